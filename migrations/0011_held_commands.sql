-- 0011_held_commands.sql -- a start command written ahead of its time, held until then.
--
-- agent_commands.hold_until: the scheduler writes the fires of the next scheduler.prepare_ahead ahead
-- of their time (their runs pending, their start commands claimed as attempt 1, as a start publishes
-- them) and publishes each start at its time (src/runs.c, cx_runs_release), which clears the column in
-- the same transaction. A held command has not reached its agent: anything that would change what the
-- fire does (a start or stop of its pipeline, a change of the pipeline or the schedule, its agent going
-- offline) undoes or cancels it instead (src/runs.c, unhold). NULL for every other command; the key
-- finds the held ones due.
--
-- MySQL 8 has no ADD COLUMN IF NOT EXISTS: each ALTER runs only when its column or key is missing, so
-- the file can be run again after a failure.

SET @cx_sql = (SELECT IF(COUNT(*) = 0,
    'ALTER TABLE agent_commands ADD COLUMN hold_until DATETIME(3) NULL',
    'DO 0')
    FROM information_schema.columns
    WHERE table_schema = DATABASE() AND table_name = 'agent_commands' AND column_name = 'hold_until');
PREPARE cx_stmt FROM @cx_sql;
EXECUTE cx_stmt;
DEALLOCATE PREPARE cx_stmt;

SET @cx_sql = (SELECT IF(COUNT(*) = 0,
    'ALTER TABLE agent_commands ADD KEY ix_commands_hold (hold_until)',
    'DO 0')
    FROM information_schema.statistics
    WHERE table_schema = DATABASE() AND table_name = 'agent_commands' AND index_name = 'ix_commands_hold');
PREPARE cx_stmt FROM @cx_sql;
EXECUTE cx_stmt;
DEALLOCATE PREPARE cx_stmt;
