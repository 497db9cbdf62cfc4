/* Issue 21 on the lab's PostgreSQL: see changes.ts. */
import { changesTests } from './changes.js';

changesTests('postgres', 50);
