-- 0008_drop_commands_agent_status.sql -- one index fewer written with every command.
--
-- agent_commands (agent_id, status) served no query alone: each one that reads by agent and status
-- (src/db/commands.c) is served as well by ix_commands_status_agent_seq (status, agent_id, seq), with
-- the status an equality or a short IN list, and the ones by agent and pipeline by
-- ix_commands_agent_pipeline_seq. EXPLAIN over 100,000 commands of 100 agents gave the same rows read
-- for each of them with and without it (and one filesort fewer). Every start and every status change of
-- a command wrote it: a scheduler's burst of fires writes one secondary index fewer per fire.
--
-- MySQL 8 has no DROP KEY IF EXISTS: the ALTER runs only when the key is there, so the file can be run
-- again after a failure.

SET @cx_sql = (SELECT IF(COUNT(*) > 0,
    'ALTER TABLE agent_commands DROP KEY ix_commands_agent_status',
    'DO 0')
    FROM information_schema.statistics
    WHERE table_schema = DATABASE() AND table_name = 'agent_commands' AND index_name = 'ix_commands_agent_status');
PREPARE cx_stmt FROM @cx_sql;
EXECUTE cx_stmt;
DEALLOCATE PREPARE cx_stmt;
