// A real SMTP server for Gantry's email notification tests: the npm package
// smtp-server on 127.0.0.1. Configuration comes from the environment:
//   SMTP_PORT         port to listen on (0: any; the chosen one is printed)
//   SMTP_KEY_FILE     PEM private key for STARTTLS
//   SMTP_CERT_FILE    PEM certificate for STARTTLS
//   SMTP_USERNAME     the one user AUTH PLAIN accepts
//   SMTP_PASSWORD     its password
//   SMTP_NO_STARTTLS  "1": do not offer STARTTLS (disabledCommands), and
//                     accept AUTH and mail in plain text, so that a client
//                     falling back to plain text would succeed
// It prints one JSON line per event on stdout, the first once it is ready:
//   {"event":"listening","port":N}
//   {"event":"auth","user":...,"secure":bool,"ok":bool}
//   {"event":"message","user":...,"secure":bool,"from":...,"to":[...],"raw":...}
// Recipients whose local part starts with "temp-fail" are refused with 451,
// those starting with "perm-fail" with 550, to test how clients classify
// SMTP errors.
import fs from 'node:fs';
import { SMTPServer } from 'smtp-server';

const noStartTLS = process.env.SMTP_NO_STARTTLS === '1';
const username = process.env.SMTP_USERNAME || '';
const password = process.env.SMTP_PASSWORD || '';
const port = Number(process.env.SMTP_PORT || 0);

const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

const options = {
  secure: false,
  authMethods: ['PLAIN'],
  authOptional: noStartTLS,
  allowInsecureAuth: noStartTLS,
  disabledCommands: noStartTLS ? ['STARTTLS'] : [],
  logger: false,
  size: 10 * 1024 * 1024,
  onAuth(auth, session, callback) {
    const ok = auth.method === 'PLAIN' && auth.username === username && auth.password === password;
    emit({ event: 'auth', user: auth.username, secure: !!session.secure, ok });
    if (!ok) {
      const err = new Error('Invalid username or password');
      err.responseCode = 535;
      return callback(err);
    }
    return callback(null, { user: auth.username });
  },
  onRcptTo(address, session, callback) {
    const local = address.address.split('@')[0];
    if (local.startsWith('temp-fail')) {
      const err = new Error('Mailbox busy, try again later');
      err.responseCode = 451;
      return callback(err);
    }
    if (local.startsWith('perm-fail')) {
      const err = new Error('No such user here');
      err.responseCode = 550;
      return callback(err);
    }
    return callback();
  },
  onData(stream, session, callback) {
    const chunks = [];
    stream.on('data', (c) => chunks.push(c));
    stream.on('end', () => {
      emit({
        event: 'message',
        user: session.user || '',
        secure: !!session.secure,
        from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
        to: session.envelope.rcptTo.map((r) => r.address),
        raw: Buffer.concat(chunks).toString('utf8'),
      });
      callback(null, 'Queued');
    });
  },
};
if (!noStartTLS) {
  options.key = fs.readFileSync(process.env.SMTP_KEY_FILE);
  options.cert = fs.readFileSync(process.env.SMTP_CERT_FILE);
}

const server = new SMTPServer(options);
server.on('error', (err) => process.stderr.write(`smtp-server error: ${err.message}\n`));
server.listen(port, '127.0.0.1', () => {
  emit({ event: 'listening', port: server.server.address().port });
});
