import { Migration } from '@mikro-orm/migrations';

/**
 * The audit trail: an append-only table of calls, each row sealed with a
 * SHA-256 hash chained to the row before it, and the chain's head.
 *
 * The canonical form (README, "Audit trail") is defined here once, in SQL, and
 * used both to seal a row as it is appended and to verify the chain:
 *
 *   hash(row)  = lower-hex SHA-256( bytes(prev_hash) || canonical(row) )
 *   prev_hash  = the hash of the row before (by id), or 64 zeros for the first row
 *   canonical  = field(id) || field(at) || field(principal) || field(on_behalf_of)
 *             || field(peer) || field(method) || field(request_id)
 *             || field(request_fingerprint) || field(status) || field(reason)
 *             || field(replayed) || field(swap_ids) || field(conflict_ids) || field(trace_id)
 *   field(v)   = 0xFFFFFFFF when v is null, else uint32 big-endian byte length of
 *                UTF-8(v), then UTF-8(v)
 *
 * with these texts: id in decimal; at as whole microseconds since the Unix
 * epoch in decimal; replayed as `true`/`false`; swap_ids and conflict_ids as
 * their lower-case UUIDs joined by `,` in stored order (empty when none).
 * Lengths make the encoding injective: no two rows share a canonical form.
 */
export class Migration20261201000000AuditTrail extends Migration {
  override up(): void {
    this.addSql(`
create table "audit_event" (
  "id" bigint generated always as identity primary key,
  "at" timestamptz not null,
  "principal" text not null,
  "on_behalf_of" text null,
  "peer" text not null,
  -- The RPC's name, e.g. ExecuteSwap.
  "method" text not null,
  "request_id" text null,
  "request_fingerprint" text null,
  -- The gRPC status answered, by name (OK, FAILED_PRECONDITION, UNAUTHENTICATED, ...).
  "status" text not null,
  -- The ErrorInfo reason of a refusal.
  "reason" text null,
  -- OK from the stored answer of an earlier call with the same key: nothing ran.
  "replayed" boolean not null,
  "swap_ids" uuid[] not null,
  "conflict_ids" uuid[] not null,
  "trace_id" text not null,
  "prev_hash" text not null check ("prev_hash" ~ '^[0-9a-f]{64}$'),
  "hash" text not null check ("hash" ~ '^[0-9a-f]{64}$')
);`);
    this.addSql(
      `create index "audit_event_principal_id_index" on "audit_event" ("principal", "id");`,
    );
    this.addSql(`create index "audit_event_method_id_index" on "audit_event" ("method", "id");`);
    this.addSql(`create index "audit_event_at_index" on "audit_event" ("at");`);
    this.addSql(
      `create index "audit_event_swap_ids_index" on "audit_event" using gin ("swap_ids");`,
    );

    // One row: the last event of the chain. Appending locks it, so the chain
    // has one writer at a time, and the next row links to the committed head.
    this.addSql(`
create table "audit_chain_head" (
  "singleton" boolean primary key default true check ("singleton"),
  "last_event_id" bigint not null,
  "hash" text not null check ("hash" ~ '^[0-9a-f]{64}$')
);`);
    this.addSql(
      `insert into "audit_chain_head" ("last_event_id", "hash") values (0, repeat('0', 64));`,
    );

    this.addSql(`
create function audit_field(value text) returns bytea language sql immutable as $$
  select case when value is null then decode('ffffffff', 'hex')
              else int4send(octet_length(convert_to(value, 'UTF8'))) || convert_to(value, 'UTF8') end
$$;`);
    this.addSql(`
create function audit_event_canonical(e audit_event) returns bytea language sql stable as $$
  select audit_field(e.id::text)
      || audit_field(trunc(extract(epoch from e.at) * 1000000)::text)
      || audit_field(e.principal)
      || audit_field(e.on_behalf_of)
      || audit_field(e.peer)
      || audit_field(e.method)
      || audit_field(e.request_id)
      || audit_field(e.request_fingerprint)
      || audit_field(e.status)
      || audit_field(e.reason)
      || audit_field(e.replayed::text)
      || audit_field(array_to_string(e.swap_ids, ','))
      || audit_field(array_to_string(e.conflict_ids, ','))
      || audit_field(e.trace_id)
$$;`);
    // Null for a prev_hash that is no hash at all, so verifying a tampered row reports it instead of failing.
    this.addSql(`
create function audit_event_hash(e audit_event) returns text language sql stable as $$
  select case when e.prev_hash ~ '^[0-9a-f]{64}$'
              then encode(sha256(decode(e.prev_hash, 'hex') || audit_event_canonical(e)), 'hex') end
$$;`);
    // Meant to be the last statement of its transaction: the head stays locked until COMMIT.
    this.addSql(`
create function audit_append(
  p_principal text, p_on_behalf_of text, p_peer text, p_method text, p_request_id text,
  p_request_fingerprint text, p_status text, p_reason text, p_replayed boolean,
  p_swap_ids uuid[], p_conflict_ids uuid[], p_trace_id text
) returns bigint language plpgsql as $$
declare
  head audit_chain_head;
  e audit_event;
begin
  -- Under READ COMMITTED a waiter reads the head its predecessor committed.
  select * into strict head from audit_chain_head for update;
  -- Taken under the lock, so ids increase in chain order.
  e.id := nextval(pg_get_serial_sequence('audit_event', 'id'));
  e.at := date_trunc('milliseconds', clock_timestamp());
  e.principal := p_principal;
  e.on_behalf_of := p_on_behalf_of;
  e.peer := p_peer;
  e.method := p_method;
  e.request_id := p_request_id;
  e.request_fingerprint := p_request_fingerprint;
  e.status := p_status;
  e.reason := p_reason;
  e.replayed := p_replayed;
  e.swap_ids := p_swap_ids;
  e.conflict_ids := p_conflict_ids;
  e.trace_id := p_trace_id;
  e.prev_hash := head.hash;
  e.hash := audit_event_hash(e);
  insert into audit_event overriding system value select e.*;
  update audit_chain_head set last_event_id = e.id, hash = e.hash;
  return e.id;
end
$$;`);

    this.addSql(`
create function audit_refuse_change() returns trigger language plpgsql as $$
begin
  raise exception '% is append-only: % refused', tg_table_name, tg_op
    using errcode = 'insufficient_privilege';
end
$$;`);
    this.addSql(`
create trigger "audit_event_append_only" before update or delete on "audit_event"
  for each row execute function audit_refuse_change();`);
    this.addSql(`
create trigger "audit_event_no_truncate" before truncate on "audit_event"
  for each statement execute function audit_refuse_change();`);
    this.addSql(`
create trigger "audit_chain_head_kept" before delete on "audit_chain_head"
  for each row execute function audit_refuse_change();`);
    this.addSql(`
create trigger "audit_chain_head_no_truncate" before truncate on "audit_chain_head"
  for each statement execute function audit_refuse_change();`);
  }

  override down(): void {
    this.addSql('drop table if exists "audit_chain_head";');
    this.addSql('drop function if exists audit_append;');
    this.addSql('drop function if exists audit_event_hash;');
    this.addSql('drop function if exists audit_event_canonical;');
    this.addSql('drop table if exists "audit_event";');
    this.addSql('drop function if exists audit_field;');
    this.addSql('drop function if exists audit_refuse_change;');
  }
}
