/**
 * The Redis that tests needing one use: REDIS_URL when set, otherwise the
 * machine's own (every machine of this project runs Redis on 6379; .ci/run
 * starts it if needed).
 */
export const TEST_REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
