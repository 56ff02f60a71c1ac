-- 0003_agent_rest_heartbeats.sql -- REST heartbeats that reached MySQL directly because Redis was down.
--
-- POST /api/v1/agents/:id/heartbeat normally writes the agent's Redis key, where hbmon finds it. When
-- Redis is unavailable the worker writes here instead (one row per agent, the latest beat), and hbmon
-- polls the rows received since its last look, so the agent stays online and its runs are reconciled.
-- received_at is the control plane's receive time, never the agent's clock.

CREATE TABLE IF NOT EXISTS agent_rest_heartbeats (
    agent_id     VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    beat         MEDIUMTEXT   NOT NULL,
    received_at  DATETIME(3)  NOT NULL,
    PRIMARY KEY (agent_id),
    KEY ix_rest_heartbeats_received (received_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
