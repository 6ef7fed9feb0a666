-- Live dashboard events: every write of a call, its screening result or a transcript turn tells
-- the nodes over NOTIFY, so a dashboard socket on any node sees calls handled by any other node.
-- The payload is small and carries no call data: the node re-reads the row with the socket's
-- tenant scope (NOTIFY payloads are visible to every LISTENer of the database).
--   {"tenant_id": uuid, "call_id": uuid, "kind": "call_started"|"call_updated"|"call_ended"|"turn",
--    "seq": integer|null}

CREATE FUNCTION notify_live_call() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('callgate_live', json_build_object(
        'tenant_id', NEW.tenant_id,
        'call_id', NEW.id,
        'kind', CASE
            WHEN TG_OP = 'INSERT' THEN 'call_started'
            WHEN NEW.ended_at IS NOT NULL AND OLD.ended_at IS NULL THEN 'call_ended'
            ELSE 'call_updated'
        END,
        'seq', NULL)::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER calls_notify_live AFTER INSERT OR UPDATE ON calls
    FOR EACH ROW EXECUTE FUNCTION notify_live_call();

CREATE FUNCTION notify_live_screening() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('callgate_live', json_build_object(
        'tenant_id', NEW.tenant_id, 'call_id', NEW.call_id, 'kind', 'call_updated', 'seq', NULL)::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER screening_results_notify_live AFTER INSERT OR UPDATE ON screening_results
    FOR EACH ROW EXECUTE FUNCTION notify_live_screening();

CREATE FUNCTION notify_live_turn() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('callgate_live', json_build_object(
        'tenant_id', NEW.tenant_id, 'call_id', NEW.call_id, 'kind', 'turn', 'seq', NEW.seq)::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER transcript_turns_notify_live AFTER INSERT OR UPDATE ON transcript_turns
    FOR EACH ROW EXECUTE FUNCTION notify_live_turn();
