import type { PeerCertificate } from 'node:tls';

/** One entry of a certificate's subject alternative names, e.g. `URI` and `spiffe://…`. */
interface AltName {
  type: string;
  value: string;
}

/**
 * The principal a verified client certificate names: its SPIFFE ID (the URI
 * SAN that starts `spiffe://`), or else its first DNS SAN; undefined when it
 * has neither. The subject's common name is never used: SANs are what a CA
 * such as cert-manager or SPIRE vouches for.
 */
export function certificatePrincipal(
  certificate: Pick<PeerCertificate, 'subjectaltname'>,
): string | undefined {
  let names: AltName[];
  try {
    names = altNamesOf(certificate.subjectaltname ?? '');
  } catch {
    return undefined; // a malformed SAN string names nobody
  }
  const spiffe = names.find((n) => n.type === 'URI' && n.value.startsWith('spiffe://'));
  return spiffe?.value ?? names.find((n) => n.type === 'DNS' && n.value !== '')?.value;
}

/**
 * Parses Node's `subjectaltname` string: `TYPE:value` entries joined by `, `,
 * where a value holding a comma, quote or other special character is written
 * as a JSON string (Node does so, so that a crafted name cannot pass for two).
 */
function altNamesOf(text: string): AltName[] {
  const names: AltName[] = [];
  let at = 0;
  while (at < text.length) {
    const colon = text.indexOf(':', at);
    if (colon < 0) break;
    const type = text.slice(at, colon);
    let value: string;
    let end: number;
    if (text[colon + 1] === '"') {
      end = closingQuote(text, colon + 2) + 1;
      value = JSON.parse(text.slice(colon + 1, end)) as string;
    } else {
      end = text.indexOf(', ', colon);
      if (end < 0) end = text.length;
      value = text.slice(colon + 1, end);
    }
    names.push({ type, value });
    at = end + 2; // past ", "
  }
  return names;
}

function closingQuote(text: string, from: number): number {
  for (let i = from; i < text.length; i++) {
    if (text[i] === '\\') i++;
    else if (text[i] === '"') return i;
  }
  throw new SyntaxError('unterminated quoted name in subjectaltname');
}
