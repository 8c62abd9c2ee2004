import { Redis } from 'ioredis';

/**
 * Deletes every key whose name holds `{prefix}` (the hash tag our lock, the
 * replay cache and the bench's lock keys all use), so a run leaves nothing
 * behind on a shared Redis, not even the 24-hour replay cache. Returns how many.
 */
export async function deleteRedisKeys(url: string, prefix: string): Promise<number> {
  const client = new Redis(url);
  try {
    let deleted = 0;
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `*{${prefix}}*`, 'COUNT', 1000);
      if (keys.length > 0) deleted += await client.unlink(...keys);
      cursor = next;
    } while (cursor !== '0');
    return deleted;
  } finally {
    client.disconnect();
  }
}
