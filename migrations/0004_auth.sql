-- 0004_auth.sql -- single sign-on: sign-ins in flight, what is known of each issued token, role changes.
--
-- auth_states: one row per sign-in started (GET /auth/login/:provider or POST /auth/login) and not yet
-- finished; any worker of any instance finishes it from this row. A row is taken (read and deleted) once;
-- expired rows are deleted as new ones are written.
--
-- sessions (0001) gains what an admin needs to recognise a token: when it was last used (at most once a
-- minute per worker), by which client, from which address, and who revoked it. revoked_at is indexed:
-- every worker polls the recent revocations.
--
-- users.role_changed_at: set when an admin changes a role; every worker polls the recent changes, so a new
-- role applies to the user's existing tokens at once.
--
-- MySQL 8 has no ADD COLUMN IF NOT EXISTS: each ALTER runs only when its first column is missing, so the
-- file can be run again after a failure.

CREATE TABLE IF NOT EXISTS auth_states (
    state          VARCHAR(64)   CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    provider       VARCHAR(64)   NOT NULL,
    code_verifier  VARCHAR(128)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    nonce          VARCHAR(128)  CHARACTER SET ascii COLLATE ascii_bin NULL,
    redirect_uri   VARCHAR(1024) NOT NULL,
    created_at     DATETIME(3)   NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    expires_at     DATETIME(3)   NOT NULL,
    PRIMARY KEY (state),
    KEY ix_auth_states_expires (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

SET @cx_sql = (SELECT IF(COUNT(*) = 0,
    'ALTER TABLE sessions ADD COLUMN last_seen_at DATETIME(3) NULL, ADD COLUMN user_agent VARCHAR(255) NULL,
        ADD COLUMN ip_address VARCHAR(64) NULL, ADD COLUMN provider VARCHAR(64) NULL,
        ADD COLUMN revoked_by VARCHAR(255) NULL, ADD KEY ix_sessions_revoked (revoked_at)',
    'DO 0')
    FROM information_schema.columns
    WHERE table_schema = DATABASE() AND table_name = 'sessions' AND column_name = 'last_seen_at');
PREPARE cx_stmt FROM @cx_sql;
EXECUTE cx_stmt;
DEALLOCATE PREPARE cx_stmt;

SET @cx_sql = (SELECT IF(COUNT(*) = 0,
    'ALTER TABLE users ADD COLUMN role_changed_at DATETIME(3) NULL, ADD KEY ix_users_role_changed (role_changed_at)',
    'DO 0')
    FROM information_schema.columns
    WHERE table_schema = DATABASE() AND table_name = 'users' AND column_name = 'role_changed_at');
PREPARE cx_stmt FROM @cx_sql;
EXECUTE cx_stmt;
DEALLOCATE PREPARE cx_stmt;
