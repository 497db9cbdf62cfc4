/* Issue 21 on the lab's MariaDB: see changes.ts. */
import { changesTests } from './changes.js';

changesTests('mysql', 51);
