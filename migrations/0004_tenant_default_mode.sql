-- A tenant's default call mode: the mode a number added to the tenant gets when none is given
-- (`voice-node number add` without `--mode`, the dashboard's "add number").
--
-- Until now it had no column: `voice-node tenant create --mode` wrote it into the tenant's
-- `tenant.create` audit-log entry (`details.default_mode`), and `number add` read it back from
-- there. An audit log is a record of what happened, not settings; the value now lives here, and
-- is backfilled from the latest such entry (tenants without one keep the old fallback,
-- 'screening').
--
-- Enumeration convention (0001): text + CHECK listing exactly `shared::domain::CallMode`.
ALTER TABLE tenants
    ADD COLUMN default_mode text NOT NULL DEFAULT 'screening'
        CONSTRAINT tenants_default_mode_check
        CHECK (default_mode IN ('screening', 'receptionist', 'forward'));

UPDATE tenants t
   SET default_mode = recorded.mode
  FROM (SELECT DISTINCT ON (tenant_id) tenant_id, details->>'default_mode' AS mode
          FROM audit_log
         WHERE action = 'tenant.create' AND tenant_id IS NOT NULL
         ORDER BY tenant_id, at DESC) recorded
 WHERE recorded.tenant_id = t.id
   AND recorded.mode IN ('screening', 'receptionist', 'forward');
