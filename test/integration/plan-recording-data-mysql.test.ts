/* Issue 16's database statements on the lab's MariaDB: see plan-recording-data.ts. */
import { planRecordingDataTests } from './plan-recording-data.js';

planRecordingDataTests('mysql', 85, 'ustest_prdm');
