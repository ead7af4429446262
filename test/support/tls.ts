import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { tempDir } from './server.js';

/** A throwaway CA and one node certificate it signed, made with the openssl CLI for one test run. */
export interface TestCertificates {
  dir: string;
  /** PEM files. */
  caFile: string;
  certFile: string;
  keyFile: string;
  /** The CA certificate's PEM, to hand to a client. */
  ca: Buffer;
}

const openssl = (args: string[], cwd: string): void => {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
};

/**
 * Generated at test time into a temp dir, never committed: P-256 keys (fast to make), valid for
 * two days, the node certificate for 127.0.0.1 and localhost (what the test servers listen on
 * and advertise).
 */
export function makeTestCertificates(dir: string = tempDir('litebase-tls-')): TestCertificates {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(
    [
      'req',
      '-x509',
      ...ec,
      '-keyout',
      'ca.key',
      '-out',
      'ca.pem',
      '-days',
      '2',
      '-subj',
      '/CN=Litebase test CA',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    dir,
  );
  openssl(['req', ...ec, '-keyout', 'node.key', '-out', 'node.csr', '-subj', '/CN=localhost'], dir);
  writeFileSync(
    path.join(dir, 'node.ext'),
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n',
  );
  openssl(
    [
      'x509',
      '-req',
      '-in',
      'node.csr',
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      'node.pem',
      '-days',
      '2',
      '-extfile',
      'node.ext',
    ],
    dir,
  );
  const caFile = path.join(dir, 'ca.pem');
  return { dir, caFile, certFile: path.join(dir, 'node.pem'), keyFile: path.join(dir, 'node.key'), ca: readFileSync(caFile) };
}
