/* Issue 23's data-path promises on the lab's PostgreSQL: see data-path.ts. */
import { dataPathTests } from './data-path.js';

dataPathTests('postgres', 160);
