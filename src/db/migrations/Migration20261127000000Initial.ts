import { Migration } from '@mikro-orm/migrations';

/** The schedule, its faculty-week lock rows and the swap history. */
export class Migration20261127000000Initial extends Migration {
  override up(): void {
    this.addSql(`
create table "person" (
  "id" uuid not null primary key,
  "name" text not null,
  "kind" text not null check ("kind" in ('faculty', 'resident')),
  "pgy_level" int null check ("pgy_level" between 1 and 3),
  "faculty_role" text null check ("faculty_role" in ('pd', 'apd', 'oic', 'dept_chief', 'sports_med', 'core', 'adjunct')),
  "version" int not null default 1,
  constraint "person_kind_fields_check" check (
    ("kind" = 'faculty' and "faculty_role" is not null and "pgy_level" is null) or
    ("kind" = 'resident' and "pgy_level" is not null and "faculty_role" is null))
);`);
    this.addSql(`
create table "block" (
  "id" uuid not null primary key,
  "date" date not null,
  "half" text not null check ("half" in ('AM', 'PM')),
  "version" int not null default 1,
  constraint "block_date_half_unique" unique ("date", "half")
);`);
    this.addSql(`
create table "assignment" (
  "id" uuid not null primary key,
  "block_id" uuid not null references "block" ("id") on update cascade,
  "person_id" uuid not null references "person" ("id") on update cascade,
  "role" text not null check ("role" in ('primary', 'supervising', 'backup')),
  "rotation" text not null,
  "version" int not null default 1,
  -- Deferred to commit: a one-to-one swap of a shared week passes through a
  -- moment where one person holds a block twice, as each row moves in turn.
  constraint "assignment_block_id_person_id_unique" unique ("block_id", "person_id") deferrable initially deferred
);`);
    this.addSql(
      `create index "assignment_person_id_block_id_index" on "assignment" ("person_id", "block_id");`,
    );
    this.addSql(`
create table "call_assignment" (
  "id" uuid not null primary key,
  "date" date not null,
  "person_id" uuid not null references "person" ("id") on update cascade,
  "call_type" text not null check ("call_type" in ('overnight', 'weekend', 'backup')),
  "version" int not null default 1
);`);
    this.addSql(
      `create index "call_assignment_person_id_date_index" on "call_assignment" ("person_id", "date");`,
    );
    this.addSql(`create index "call_assignment_date_index" on "call_assignment" ("date");`);
    this.addSql(`
create table "absence" (
  "id" uuid not null primary key,
  "person_id" uuid not null references "person" ("id") on update cascade,
  "start_date" date not null,
  "end_date" date not null,
  "type" text not null check ("type" in ('deployment', 'tdy', 'family_emergency', 'bereavement', 'convalescent', 'parental', 'medical', 'sick', 'vacation', 'conference')),
  "blocking" boolean not null,
  "version" int not null default 1,
  constraint "absence_dates_check" check ("start_date" <= "end_date")
);`);
    this.addSql(
      `create index "absence_person_id_start_date_index" on "absence" ("person_id", "start_date");`,
    );
    this.addSql(`
create table "faculty_week" (
  "id" uuid not null primary key,
  "person_id" uuid not null references "person" ("id") on update cascade,
  "week_start" date not null check (extract(isodow from "week_start") = 1),
  "fencing_token" bigint null,
  "version" int not null default 1,
  constraint "faculty_week_person_id_week_start_unique" unique ("person_id", "week_start")
);`);
    this.addSql(`
create table "swap_record" (
  "id" uuid not null primary key,
  "source_faculty_id" uuid not null references "person" ("id"),
  "source_week" date not null check (extract(isodow from "source_week") = 1),
  "target_faculty_id" uuid not null references "person" ("id"),
  "target_week" date null check (extract(isodow from "target_week") = 1),
  "swap_type" text not null check ("swap_type" in ('ONE_TO_ONE', 'ABSORB')),
  "status" text not null check ("status" in ('PENDING', 'APPROVED', 'EXECUTED', 'ROLLED_BACK')),
  "reason" text not null,
  "requested_at" timestamptz not null,
  "requested_by" text not null,
  "executed_at" timestamptz null,
  "executed_by" text null,
  "rolled_back_at" timestamptz null,
  "rolled_back_by" text null,
  "rollback_reason" text null,
  "moves" jsonb not null,
  "warnings" jsonb not null,
  "fencing_token" bigint null,
  "version" int not null default 1,
  constraint "swap_record_week_by_type_check" check (("swap_type" = 'ABSORB') = ("target_week" is null))
);`);
    this.addSql(
      `create index "swap_record_source_index" on "swap_record" ("source_faculty_id", "source_week");`,
    );
    this.addSql(
      `create index "swap_record_target_index" on "swap_record" ("target_faculty_id", "target_week");`,
    );
    this.addSql(
      `create index "swap_record_requested_at_id_index" on "swap_record" ("requested_at" desc, "id" desc);`,
    );
  }

  override down(): void {
    this.addSql(
      'drop table if exists "swap_record", "faculty_week", "absence", "call_assignment", "assignment", "block", "person" cascade;',
    );
  }
}
