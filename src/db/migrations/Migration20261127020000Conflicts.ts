import { Migration } from '@mikro-orm/migrations';

/** Conflict alerts, one open alert per (type, faculty member, week). */
export class Migration20261127020000Conflicts extends Migration {
  override up(): void {
    this.addSql(`
create table "conflict_alert" (
  "id" uuid not null primary key,
  "faculty_id" uuid not null references "person" ("id"),
  "type" text not null check ("type" in ('LEAVE_FMIT_OVERLAP', 'BACK_TO_BACK', 'EXCESSIVE_ALTERNATING', 'CALL_CASCADE', 'EXTERNAL_COMMITMENT')),
  "severity" text not null check ("severity" in ('CRITICAL', 'WARNING', 'INFO')),
  "week_start" date not null check (extract(isodow from "week_start") = 1),
  "absence_id" uuid null references "absence" ("id") on delete set null,
  "swap_id" uuid null references "swap_record" ("id") on delete set null,
  "status" text not null check ("status" in ('NEW', 'ACKNOWLEDGED', 'RESOLVED', 'IGNORED')),
  "description" text not null,
  "created_at" timestamptz not null,
  "acknowledged_by" text null,
  "acknowledged_at" timestamptz null,
  "resolved_by" text null,
  "resolved_at" timestamptz null,
  "notes" text null,
  "resolution" text null,
  "resolution_swap_id" uuid null references "swap_record" ("id") on delete set null,
  "version" int not null default 1
);`);
    // Detection inserts against this: an alert still open (or deliberately ignored)
    // is never raised twice, while a resolved one can come back if the cause does.
    this.addSql(`
create unique index "conflict_alert_open_unique" on "conflict_alert" ("type", "faculty_id", "week_start")
  where "status" in ('NEW', 'ACKNOWLEDGED', 'IGNORED');`);
    this.addSql(
      `create index "conflict_alert_week_index" on "conflict_alert" ("week_start", "id");`,
    );
    this.addSql(
      `create index "conflict_alert_faculty_index" on "conflict_alert" ("faculty_id", "week_start");`,
    );
  }

  override down(): void {
    this.addSql('drop table if exists "conflict_alert";');
  }
}
