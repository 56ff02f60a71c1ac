-- 0010_drop_runs_status.sql -- one index fewer written with every run and every change of its status.
--
-- pipeline_runs (status) served one query alone: hbmon's agents with active runs (src/db/agents.c,
-- SQL_WITH_RUNS), which now reads them on uq_runs_active (active_pipeline_id IS NOT NULL: the column is
-- set exactly while the run is pending, running or paused), the same rows. Every other query of
-- src/db/ that reads pipeline_runs by status also names the run, its pipeline or its agent and is served
-- by the primary key, ix_runs_pipeline_created, ix_runs_agent_status or ix_runs_agent_pipeline_created:
-- EXPLAIN over 100,000 runs of 100 agents (4,000 active) read the same rows for each of them with and
-- without it. The batches' updates by id already named the primary key, because on this index the
-- optimizer read and locked every run of a status (src/db/runs.c, update_many). A run is written with
-- its status and changes it two or three times: a scheduler's burst of fires writes one secondary index
-- fewer per fire and per acknowledgement and event.
--
-- MySQL 8 has no DROP KEY IF EXISTS: the ALTER runs only when the key is there, so the file can be run
-- again after a failure.

SET @cx_sql = (SELECT IF(COUNT(*) > 0,
    'ALTER TABLE pipeline_runs DROP KEY ix_runs_status',
    'DO 0')
    FROM information_schema.statistics
    WHERE table_schema = DATABASE() AND table_name = 'pipeline_runs' AND index_name = 'ix_runs_status');
PREPARE cx_stmt FROM @cx_sql;
EXECUTE cx_stmt;
DEALLOCATE PREPARE cx_stmt;
