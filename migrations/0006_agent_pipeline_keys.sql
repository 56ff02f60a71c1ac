-- 0006_agent_pipeline_keys.sql -- keys by agent and pipeline, for the command order and the
-- reconciliation of what agents run with what the control plane asked.
--
-- agent_commands (agent_id, pipeline_id, seq): a command is delivered only while no newer command of
-- the same agent and pipeline has reached the agent (src/db/commands.c, DELIVERABLE); with this key
-- that test reads a few rows, however long the agent's history.
--
-- pipeline_runs (agent_id, pipeline_id, created_at): hbmon looks up the newest run of a pipeline on an
-- agent that reports it running without an active run of ours (a stray, src/runs.c).
--
-- MySQL 8 has no ADD KEY IF NOT EXISTS: each ALTER runs only when its key is missing, so the file can
-- be run again after a failure.

SET @cx_sql = (SELECT IF(COUNT(*) = 0,
    'ALTER TABLE agent_commands ADD KEY ix_commands_agent_pipeline_seq (agent_id, pipeline_id, seq)',
    'DO 0')
    FROM information_schema.statistics
    WHERE table_schema = DATABASE() AND table_name = 'agent_commands' AND index_name = 'ix_commands_agent_pipeline_seq');
PREPARE cx_stmt FROM @cx_sql;
EXECUTE cx_stmt;
DEALLOCATE PREPARE cx_stmt;

SET @cx_sql = (SELECT IF(COUNT(*) = 0,
    'ALTER TABLE pipeline_runs ADD KEY ix_runs_agent_pipeline_created (agent_id, pipeline_id, created_at)',
    'DO 0')
    FROM information_schema.statistics
    WHERE table_schema = DATABASE() AND table_name = 'pipeline_runs' AND index_name = 'ix_runs_agent_pipeline_created');
PREPARE cx_stmt FROM @cx_sql;
EXECUTE cx_stmt;
DEALLOCATE PREPARE cx_stmt;
