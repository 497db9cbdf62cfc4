/* Issue 23's data-path promises on the lab's MariaDB: see data-path.ts. */
import { dataPathTests } from './data-path.js';

dataPathTests('mysql', 161);
