-- 0005_schedules.sql -- what the schedules API and the scheduler keep on a schedule (0001 made the table).
--
-- revision: bumped by every change through the API; the scheduler's compare-and-set that claims a fire
-- names the revision it read (and next_run_at), so a fire computed from an expression that was changed
-- meanwhile is never claimed. fires, skipped, missed, failures: what became of the schedule's fire times
-- (a run started; skipped by the overlap policy; missed while no scheduler ran; a run that could not
-- start, recorded failed). last_run_id: the newest run the schedule started (its status is read through
-- it). updated_by: who last changed the schedule. ix_schedules_created: the order of a listing.
--
-- MySQL 8 has no ADD COLUMN IF NOT EXISTS: the ALTER runs only when its first column is missing, so the
-- file can be run again after a failure.

SET @cx_sql = (SELECT IF(COUNT(*) = 0,
    'ALTER TABLE schedules ADD COLUMN revision BIGINT NOT NULL DEFAULT 1,
        ADD COLUMN fires BIGINT NOT NULL DEFAULT 0, ADD COLUMN skipped BIGINT NOT NULL DEFAULT 0,
        ADD COLUMN missed BIGINT NOT NULL DEFAULT 0, ADD COLUMN failures BIGINT NOT NULL DEFAULT 0,
        ADD COLUMN last_run_id VARCHAR(36) NULL, ADD COLUMN updated_by VARCHAR(255) NULL,
        ADD KEY ix_schedules_created (created_at)',
    'DO 0')
    FROM information_schema.columns
    WHERE table_schema = DATABASE() AND table_name = 'schedules' AND column_name = 'revision');
PREPARE cx_stmt FROM @cx_sql;
EXECUTE cx_stmt;
DEALLOCATE PREPARE cx_stmt;
