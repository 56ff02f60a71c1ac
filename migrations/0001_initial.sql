-- 0001_initial.sql -- the conduix-cp schema (MariaDB 10.11+ and MySQL 8).
--
-- All times are UTC (the server's connections set time_zone '+00:00'). Ids are UUIDs in VARCHAR(36),
-- except agents.id, which is the agent's own free string (case-sensitive, as in its Redis keys).
-- No foreign keys: tables are related by indexed columns only, so TRUNCATE of any table works
-- (a benchmark harness truncates pipelines and inserts rows giving only id, name, description,
-- config_yaml, created_by, created_at and updated_at: every other column has a default).
-- Every statement is re-runnable (IF NOT EXISTS), so a file that failed half way can be fixed and rerun.

CREATE TABLE IF NOT EXISTS pipelines (
    id           VARCHAR(36)  NOT NULL,
    name         VARCHAR(255) NOT NULL,
    description  TEXT         NULL,
    config_yaml  MEDIUMTEXT   NOT NULL,
    version      INT          NOT NULL DEFAULT 1,
    created_by   VARCHAR(255) NULL,
    updated_by   VARCHAR(255) NULL,
    created_at   DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    updated_at   DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (id),
    UNIQUE KEY uq_pipelines_name (name),
    KEY ix_pipelines_created_at (created_at),
    KEY ix_pipelines_updated_at (updated_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Earlier configurations of a pipeline: the row of version N holds what the pipeline was at version N.
CREATE TABLE IF NOT EXISTS pipeline_versions (
    pipeline_id  VARCHAR(36)  NOT NULL,
    version      INT          NOT NULL,
    name         VARCHAR(255) NULL,
    description  TEXT         NULL,
    config_yaml  MEDIUMTEXT   NOT NULL,
    created_by   VARCHAR(255) NULL,
    created_at   DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (pipeline_id, version)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Runs. A scheduled fire is the pair (schedule_id, scheduled_for), unique. active_pipeline_id is the
-- pipeline id while the run is pending, running or paused and NULL otherwise: its unique key makes
-- "one active run per pipeline" hold in the database, whatever races the callers lose.
CREATE TABLE IF NOT EXISTS pipeline_runs (
    id               VARCHAR(36)  NOT NULL,
    pipeline_id      VARCHAR(36)  NOT NULL,
    agent_id         VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    schedule_id      VARCHAR(36)  NULL,
    scheduled_for    DATETIME     NULL,
    `trigger`        VARCHAR(16)  NOT NULL DEFAULT 'manual',
    status           VARCHAR(16)  NOT NULL DEFAULT 'pending',
    started_at       DATETIME(3)  NULL,
    ended_at         DATETIME(3)  NULL,
    processed_count  BIGINT       NOT NULL DEFAULT 0,
    error_count      BIGINT       NOT NULL DEFAULT 0,
    error_message    TEXT         NULL,
    checkpoint       MEDIUMTEXT   NULL,
    failover_of      VARCHAR(36)  NULL,
    created_by       VARCHAR(255) NULL,
    created_at       DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    updated_at       DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    active_pipeline_id VARCHAR(36) GENERATED ALWAYS AS
        (IF(status IN ('pending', 'running', 'paused'), pipeline_id, NULL)) STORED,
    PRIMARY KEY (id),
    UNIQUE KEY uq_runs_fire (schedule_id, scheduled_for),
    UNIQUE KEY uq_runs_active (active_pipeline_id),
    KEY ix_runs_pipeline_created (pipeline_id, created_at),
    KEY ix_runs_agent_status (agent_id, status),
    KEY ix_runs_status (status)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Schedules. timezone NULL means scheduler.timezone. Fire times are whole seconds.
CREATE TABLE IF NOT EXISTS schedules (
    id                   VARCHAR(36)  NOT NULL,
    pipeline_id          VARCHAR(36)  NOT NULL,
    cron_expression      VARCHAR(255) NOT NULL,
    timezone             VARCHAR(64)  NULL,
    enabled              TINYINT(1)   NOT NULL DEFAULT 1,
    overlap_policy       VARCHAR(16)  NOT NULL DEFAULT 'skip',
    starting_deadline_s  INT          NULL,
    last_run_at          DATETIME(3)  NULL,
    next_run_at          DATETIME     NULL,
    created_by           VARCHAR(255) NULL,
    created_at           DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    updated_at           DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (id),
    KEY ix_schedules_due (enabled, next_run_at),
    KEY ix_schedules_pipeline (pipeline_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The agent registry, kept current from heartbeats. labels and pipelines are JSON texts.
CREATE TABLE IF NOT EXISTS agents (
    id                 VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    hostname           VARCHAR(255) NULL,
    ip_address         VARCHAR(64)  NULL,
    version            VARCHAR(64)  NULL,
    labels             TEXT         NULL,
    status             VARCHAR(16)  NOT NULL DEFAULT 'unknown',
    last_heartbeat     DATETIME(3)  NULL,
    status_changed_at  DATETIME(3)  NULL,
    registered_at      DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    cpu_usage          DOUBLE       NOT NULL DEFAULT 0,
    memory_usage       DOUBLE       NOT NULL DEFAULT 0,
    disk_usage         DOUBLE       NOT NULL DEFAULT 0,
    pipelines          TEXT         NULL,
    updated_at         DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (id),
    KEY ix_agents_status (status),
    KEY ix_agents_last_heartbeat (last_heartbeat)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS agent_status_transitions (
    id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    agent_id     VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    from_status  VARCHAR(16)  NULL,
    to_status    VARCHAR(16)  NOT NULL,
    reason       VARCHAR(255) NULL,
    `at`         DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (id),
    KEY ix_transitions_agent_at (agent_id, `at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The durable command outbox. seq is the delivery order.
CREATE TABLE IF NOT EXISTS agent_commands (
    id              VARCHAR(36)  NOT NULL,
    seq             BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    agent_id        VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    type            VARCHAR(32)  NOT NULL,
    pipeline_id     VARCHAR(36)  NULL,
    run_id          VARCHAR(36)  NULL,
    payload         MEDIUMTEXT   NULL,
    status          VARCHAR(16)  NOT NULL DEFAULT 'queued',
    attempts        INT          NOT NULL DEFAULT 0,
    last_sent_at    DATETIME(3)  NULL,
    acked_at        DATETIME(3)  NULL,
    result_message  TEXT         NULL,
    result_error    TEXT         NULL,
    created_by      VARCHAR(255) NULL,
    created_at      DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    expires_at      DATETIME(3)  NULL,
    updated_at      DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (id),
    UNIQUE KEY uq_commands_seq (seq),
    KEY ix_commands_status_agent_seq (status, agent_id, seq),
    KEY ix_commands_agent_status (agent_id, status),
    KEY ix_commands_status_expires (status, expires_at),
    KEY ix_commands_run (run_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Users are keyed by (provider, the provider's subject), never by e-mail alone.
CREATE TABLE IF NOT EXISTS users (
    id                VARCHAR(36)  NOT NULL,
    provider          VARCHAR(64)  NOT NULL,
    provider_subject  VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    email             VARCHAR(255) NULL,
    name              VARCHAR(255) NULL,
    role              VARCHAR(16)  NOT NULL DEFAULT 'viewer',
    created_at        DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    last_login_at     DATETIME(3)  NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_users_provider_subject (provider, provider_subject),
    KEY ix_users_email (email)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Issued and revoked tokens by jti. user_id is the token's sub (a user id, or another subject).
CREATE TABLE IF NOT EXISTS sessions (
    jti         VARCHAR(64)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    user_id     VARCHAR(255) NULL,
    created_at  DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    expires_at  DATETIME(3)  NOT NULL,
    revoked_at  DATETIME(3)  NULL,
    PRIMARY KEY (jti),
    KEY ix_sessions_expires (expires_at),
    KEY ix_sessions_user (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS audit_log (
    id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    `at`         DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    actor        VARCHAR(255) NULL,
    action       VARCHAR(64)  NOT NULL,
    target_type  VARCHAR(32)  NULL,
    target_id    VARCHAR(255) NULL,
    request_id   VARCHAR(64)  NULL,
    before_json  MEDIUMTEXT   NULL,
    after_json   MEDIUMTEXT   NULL,
    PRIMARY KEY (id),
    KEY ix_audit_target (target_type, target_id),
    KEY ix_audit_at (`at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
