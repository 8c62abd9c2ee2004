import { Migration } from '@mikro-orm/migrations';

/** Idempotency keys and the responses they replay, committed with the change they record. */
export class Migration20261127010000Idempotency extends Migration {
  override up(): void {
    this.addSql(`
create table "idempotency_record" (
  "scope" text not null,
  "request_id" uuid not null,
  "fingerprint" text not null,
  -- Null only inside the transaction that claimed the key; committed rows always have it.
  "response" bytea null,
  "created_at" timestamptz not null default now(),
  "expires_at" timestamptz not null,
  constraint "idempotency_record_pkey" primary key ("scope", "request_id")
);`);
    this.addSql(
      `create index "idempotency_record_expires_at_index" on "idempotency_record" ("expires_at");`,
    );
  }

  override down(): void {
    this.addSql('drop table if exists "idempotency_record";');
  }
}
