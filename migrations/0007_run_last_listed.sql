-- 0007_run_last_listed.sql -- when a heartbeat of its agent last listed an active run.
--
-- pipeline_runs.last_listed_at: set by the heartbeat reconciliation (src/runs.c) for every active run
-- whose pipeline the beat lists. A run its agent stops listing is failed ("no longer reports the
-- pipeline in its heartbeats") only once it has been unlisted for agents.heartbeat_timeout (counted
-- from last_listed_at, or from started_at when no beat listed it yet), so a completed or stopped event
-- still on its way through the dispatcher settles the run with its own status first.
--
-- MySQL 8 has no ADD COLUMN IF NOT EXISTS: the ALTER runs only when the column is missing, so the file
-- can be run again after a failure.

SET @cx_sql = (SELECT IF(COUNT(*) = 0,
    'ALTER TABLE pipeline_runs ADD COLUMN last_listed_at DATETIME(3) NULL',
    'DO 0')
    FROM information_schema.columns
    WHERE table_schema = DATABASE() AND table_name = 'pipeline_runs' AND column_name = 'last_listed_at');
PREPARE cx_stmt FROM @cx_sql;
EXECUTE cx_stmt;
DEALLOCATE PREPARE cx_stmt;
