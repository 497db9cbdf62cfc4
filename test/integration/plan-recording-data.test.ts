/* Issue 16's database statements on the lab's PostgreSQL: see plan-recording-data.ts. */
import { planRecordingDataTests } from './plan-recording-data.js';

planRecordingDataTests('postgres', 84, 'ustest_prd');
