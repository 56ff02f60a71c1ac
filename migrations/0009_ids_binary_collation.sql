-- 0009_ids_binary_collation.sql -- the ids compared byte by byte (utf8mb4_bin), not through the Unicode
-- collation.
--
-- The ids of stored rows are UUIDs that the server writes (lower-case hex, cx_uuid_v7), and every
-- compare of one went through utf8mb4_unicode_ci: each step of a B-tree search on a primary key, a
-- pipeline_id or a run_id, each join, each CASE id WHEN and IN list of the batches. In a scheduler's
-- burst of 10,000 fires that was about 14 % of mariadbd's CPU samples (the UCA code in perf; bench/README.md,
-- "Ids in a binary collation"). utf8mb4_bin compares the bytes: the same order and the same matches for
-- the server's ids.
--
-- utf8mb4_bin, not ascii_bin: a value from a client (a path, a query, an agent's message) is compared
-- with these columns, and MariaDB and MySQL refuse a utf8mb4 text that is not ASCII against an ascii
-- column ("Illegal mix of collations"), which would turn GET /api/v1/pipelines/ü into an error instead
-- of a 404. In the same character set a non-ASCII text simply matches no row. ascii_bin was measured
-- too and saved no more MariaDB time than utf8mb4_bin.
--
-- Both sides of every join convert together: pipelines.id, pipeline_versions.pipeline_id,
-- pipeline_runs' ids (active_pipeline_id, generated from pipeline_id, with it), schedules' ids and
-- last_run_id, agent_commands' ids, and audit_log.target_id (a pipeline's, a run's, a schedule's, or an
-- agent's id, which is utf8mb4_bin already). Agent ids keep their utf8mb4_bin; free text stays as it is.
--
-- Each ALTER runs only while a column of its table is in another collation, so the file can be run again
-- after a failure (MySQL 8 has no MODIFY IF). Converting rebuilds the table: on a large history it takes
-- as long as a copy of it.

SET @cx_sql = (SELECT IF(COUNT(*) > 0,
    'ALTER TABLE pipelines MODIFY id VARCHAR(36) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL',
    'DO 0')
    FROM information_schema.columns
    WHERE table_schema = DATABASE() AND table_name = 'pipelines' AND column_name = 'id'
      AND collation_name <> 'utf8mb4_bin');
PREPARE cx_stmt FROM @cx_sql;
EXECUTE cx_stmt;
DEALLOCATE PREPARE cx_stmt;

SET @cx_sql = (SELECT IF(COUNT(*) > 0,
    'ALTER TABLE pipeline_versions MODIFY pipeline_id VARCHAR(36) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL',
    'DO 0')
    FROM information_schema.columns
    WHERE table_schema = DATABASE() AND table_name = 'pipeline_versions' AND column_name = 'pipeline_id'
      AND collation_name <> 'utf8mb4_bin');
PREPARE cx_stmt FROM @cx_sql;
EXECUTE cx_stmt;
DEALLOCATE PREPARE cx_stmt;

SET @cx_sql = (SELECT IF(COUNT(*) > 0,
    'ALTER TABLE pipeline_runs
        MODIFY id VARCHAR(36) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
        MODIFY pipeline_id VARCHAR(36) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
        MODIFY schedule_id VARCHAR(36) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
        MODIFY failover_of VARCHAR(36) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
        MODIFY active_pipeline_id VARCHAR(36) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin GENERATED ALWAYS AS
            (IF(status IN (''pending'', ''running'', ''paused''), pipeline_id, NULL)) STORED',
    'DO 0')
    FROM information_schema.columns
    WHERE table_schema = DATABASE() AND table_name = 'pipeline_runs'
      AND column_name IN ('id', 'pipeline_id', 'schedule_id', 'failover_of', 'active_pipeline_id')
      AND collation_name <> 'utf8mb4_bin');
PREPARE cx_stmt FROM @cx_sql;
EXECUTE cx_stmt;
DEALLOCATE PREPARE cx_stmt;

SET @cx_sql = (SELECT IF(COUNT(*) > 0,
    'ALTER TABLE schedules
        MODIFY id VARCHAR(36) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
        MODIFY pipeline_id VARCHAR(36) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
        MODIFY last_run_id VARCHAR(36) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL',
    'DO 0')
    FROM information_schema.columns
    WHERE table_schema = DATABASE() AND table_name = 'schedules'
      AND column_name IN ('id', 'pipeline_id', 'last_run_id') AND collation_name <> 'utf8mb4_bin');
PREPARE cx_stmt FROM @cx_sql;
EXECUTE cx_stmt;
DEALLOCATE PREPARE cx_stmt;

SET @cx_sql = (SELECT IF(COUNT(*) > 0,
    'ALTER TABLE agent_commands
        MODIFY id VARCHAR(36) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
        MODIFY pipeline_id VARCHAR(36) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
        MODIFY run_id VARCHAR(36) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL',
    'DO 0')
    FROM information_schema.columns
    WHERE table_schema = DATABASE() AND table_name = 'agent_commands'
      AND column_name IN ('id', 'pipeline_id', 'run_id') AND collation_name <> 'utf8mb4_bin');
PREPARE cx_stmt FROM @cx_sql;
EXECUTE cx_stmt;
DEALLOCATE PREPARE cx_stmt;

SET @cx_sql = (SELECT IF(COUNT(*) > 0,
    'ALTER TABLE audit_log MODIFY target_id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL',
    'DO 0')
    FROM information_schema.columns
    WHERE table_schema = DATABASE() AND table_name = 'audit_log' AND column_name = 'target_id'
      AND collation_name <> 'utf8mb4_bin');
PREPARE cx_stmt FROM @cx_sql;
EXECUTE cx_stmt;
DEALLOCATE PREPARE cx_stmt;
