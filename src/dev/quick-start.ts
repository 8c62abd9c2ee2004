/**
 * Tells whoever ran `npm start` without DATABASE_URL how to call the service it
 * just started, over the embedded database and its demo program: `port` is the
 * gRPC port, `databasePort` the embedded PostgreSQL's.
 */
export function printQuickStart(port: number, databasePort: number): void {
  const target = `localhost:${port}`;
  const swap = JSON.stringify({
    source_faculty_id: '<faculty uuid>',
    source_week: '<a Monday, YYYY-MM-DD>',
    target_faculty_id: '<faculty uuid>',
    target_week: '<a Monday>',
    swap_type: 'SWAP_TYPE_ONE_TO_ONE',
    reason: 'demo',
    request_id: '<a fresh uuid>',
  });
  process.stderr.write(
    [
      '',
      `swap-service is listening on ${target}, over the embedded PostgreSQL with the demo program.`,
      'Try it with grpcurl (server reflection is on):',
      `  grpcurl -plaintext ${target} list`,
      `  grpcurl -plaintext -d '{"page_size": 5}' ${target} swap.v1.SwapService/ListSwaps`,
      `  grpcurl -plaintext -d '${swap}' ${target} swap.v1.SwapService/ValidateSwap`,
      'Faculty and their FMIT weeks:',
      `  psql postgresql://postgres:postgres@127.0.0.1:${databasePort}/swap -c "select p.id, p.name, p.faculty_role, min(b.date) as fmit_week from person p join assignment a on a.person_id = p.id join block b on b.id = a.block_id where a.rotation = 'FMIT' and p.kind = 'faculty' and b.date >= current_date group by 1, 2, 3, date_trunc('week', b.date) order by 4 limit 12"`,
      '',
    ].join('\n'),
  );
}
