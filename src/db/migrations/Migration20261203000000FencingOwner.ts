import { Migration } from '@mikro-orm/migrations';

/**
 * The lock grant that recorded a faculty week's fencing token. A Redis
 * failover can lose the fencing counter and hand one token to two grants;
 * the fence tells them apart by this owner, so only the first to write the
 * week may go on. Existing rows keep a null owner: a tie with them is refused,
 * and the retry's grant takes a token above theirs.
 */
export class Migration20261203000000FencingOwner extends Migration {
  override up(): void {
    this.addSql(`alter table "faculty_week" add column "fencing_owner" text null;`);
  }

  override down(): void {
    this.addSql(`alter table "faculty_week" drop column if exists "fencing_owner";`);
  }
}
