import request from 'supertest';
import { writeWorkbook } from '../src/bulk/xlsxWrite.js';
import { closedPortUrl, requestsTo, startStack, type Stack } from './helpers.js';

let stack: Stack;
afterEach(async () => stack?.close());

const validate = (content: string | Buffer) =>
  request(stack.app).post('/hospitals/bulk/validate').attach('file', Buffer.from(content), 'hospitals.csv');

/** The history is empty and the directory saw no write: a dry run changes nothing. */
async function expectNothingRecorded() {
  expect((await request(stack.app).get('/batches')).body.batches).toEqual([]);
  expect(stack.sim.requests.filter((r) => r.method !== 'GET')).toEqual([]);
  expect(stack.sim.hospitals()).toEqual([]);
}

describe('dry run — POST /hospitals/bulk/validate', () => {
  test('when the file is valid, then 200 with valid true and its rows, and nothing is created or recorded', async () => {
    stack = await startStack();

    const res = await validate('name,address,phone\nGeneral Hospital,1 Main St,555\nClinic,2 Oak Ave,\n');

    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      valid: true,
      total_rows: 2,
      rows: [
        { row: 1, name: 'General Hospital', address: '1 Main St', phone: '555' },
        { row: 2, name: 'Clinic', address: '2 Oak Ave', phone: null },
      ],
      errors: [],
      warnings: [],
      format: {
        type: 'csv',
        encoding: 'utf-8',
        delimiter: ',',
        sheet: null,
        columns: [
          { header: 'name', field: 'name' },
          { header: 'address', field: 'address' },
          { header: 'phone', field: 'phone' },
        ],
      },
      notices: [],
    });
    expect(requestsTo(stack.sim, 'list')).toHaveLength(1);
    await expectNothingRecorded();
  });

  test('when the file has problems, then 200 with valid false, every row as read, and the errors with their cells', async () => {
    stack = await startStack();

    const res = await validate('name,address,phone\n ,1 Main St,\nClinic,,555\n');

    expect(res.status).toBe(200);
    expect(res.body.valid).toBe(false);
    expect(res.body.rows).toEqual([
      { row: 1, name: '', address: '1 Main St', phone: null },
      { row: 2, name: 'Clinic', address: '', phone: '555' },
    ]);
    expect(res.body.errors).toEqual([
      { row: 1, line: 2, column: 'name', message: 'Line 2: name is required' },
      { row: 2, line: 3, column: 'address', message: 'Line 3: address is required' },
    ]);
    await expectNothingRecorded();
  });

  test('when the file is not text we can read, then 200 with valid false, the reason, and no format', async () => {
    stack = await startStack();

    const res = await validate(Buffer.from([0xff, 0xfe, 0x6e, 0x00, 0x00, 0x00]));

    expect(res.body).toMatchObject({ valid: false, total_rows: 0, rows: [], format: null, notices: [] });
    expect(res.body.errors[0].message).toMatch(/^The file is not text we can read \(it looks like a binary file\)/);
  });

  test('when rows repeat within the file, then a warning names both rows', async () => {
    stack = await startStack();

    const res = await validate('name,address\nClinic,1 Road\nOther,2 Road\nclinic , 1  road\n');

    expect(res.body.valid).toBe(true);
    expect(res.body.warnings).toEqual([{ kind: 'repeated_in_file', row: 3, message: 'Row 3 repeats row 1 (same name and address).' }]);
  });

  test('when a row already exists in the directory, then a warning names it', async () => {
    stack = await startStack();
    await fetch(`${stack.sim.url}/hospitals/`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'General Hospital', address: '1 Main St', phone: null }),
    });

    const res = await validate('name,address\nGeneral Hospital,1 Main St\nNew Clinic,3 Road\n');

    expect(res.body.warnings).toEqual([
      { kind: 'exists_in_directory', row: 1, message: 'Row 1: a hospital with this name and address already exists in the directory.' },
    ]);
  });

  test('when the directory cannot be reached, then the warning says the check was not made and the rest of the answer stands', async () => {
    stack = await startStack({ env: { HOSPITAL_API_BASE_URL: await closedPortUrl() } });

    const res = await validate('name,address\nClinic,1 Road\n');

    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ valid: true, total_rows: 1 });
    expect(res.body.warnings).toEqual([
      { kind: 'not_checked', row: null, message: expect.stringMatching(/^Not checked against the directory, which could not be reached \(.*ECONNREFUSED/) },
    ]);
  });
});

describe('results download — GET /batches/:id/results.csv', () => {
  test('when a batch has run, then its CSV has one line per row with id, status and error, named after the upload', async () => {
    stack = await startStack();
    stack.sim.inject('create', { kind: 'pass' });
    stack.sim.inject('create', { kind: 'status', status: 400, body: { detail: 'Refused, for "reasons"' } });
    const { body: report } = await request(stack.app)
      .post('/hospitals/bulk')
      .attach('file', Buffer.from('name,address,phone\nGeneral,"1 Main St, Town",555\nClinic,2 Road,\n'), 'spring intake.csv');

    const res = await request(stack.app).get(`/batches/${report.batch_id}/results.csv`);

    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/csv; charset=utf-8');
    expect(res.headers['content-disposition']).toBe(
      `attachment; filename="spring intake-results.csv"; filename*=UTF-8''spring%20intake-results.csv`,
    );
    const id = report.hospitals[0].hospital_id;
    expect(res.text).toBe(
      '\uFEFFrow,name,address,phone,hospital_id,status,error_message\r\n' +
        `1,General,"1 Main St, Town",555,${id},created,\r\n` +
        '2,Clinic,2 Road,,,failed,"Rejected by the directory (HTTP 400): Refused, for ""reasons"""\r\n',
    );
  });

  test('when a value looks like a spreadsheet formula, then the download neutralises it but the API returns it as written', async () => {
    stack = await startStack();
    const formula = '=HYPERLINK("http://x","click")';
    const { body: report } = await request(stack.app)
      .post('/hospitals/bulk')
      .attach('file', Buffer.from(`name,address,phone\n"${formula.replaceAll('"', '""')}",@home,+1 555\n`), 'f.csv');

    const res = await request(stack.app).get(`/batches/${report.batch_id}/results.csv`);

    expect(report.hospitals[0]).toMatchObject({ name: formula, address: '@home', phone: '+1 555' });
    const line = res.text.split('\r\n')[1]!;
    expect(line.startsWith(`1,"'=HYPERLINK(""http://x"",""click"")",'@home,'+1 555,`)).toBe(true);
  });

  test('when the upload was a Windows-1252 CSV or a workbook, then the download is UTF-8 with a BOM and named after it', async () => {
    stack = await startStack();
    const { body: report } = await request(stack.app)
      .post('/hospitals/bulk')
      .attach('file', Buffer.from('name;address\nH\xf4pital;Rue 1\n', 'latin1'), 'h\u00f4pitaux.csv');
    const { body: workbook } = await request(stack.app)
      .post('/hospitals/bulk')
      .attach('file', writeWorkbook([['name', 'address'], ['Klinik Süd', 'Straße 5']]), 'kliniken.xlsx');

    const csv = await request(stack.app).get(`/batches/${report.batch_id}/results.csv`).buffer(true);
    const xlsx = await request(stack.app).get(`/batches/${workbook.batch_id}/results.csv`);

    expect(csv.text.split('\r\n')[1]).toMatch(/^1,Hôpital,Rue 1,,\d+,created_and_activated,$/);
    expect(xlsx.text.startsWith('\uFEFFrow,')).toBe(true);
    expect(xlsx.text.split('\r\n')[1]).toMatch(/^1,Klinik Süd,Straße 5,,\d+,created_and_activated,$/);
    expect(xlsx.headers['content-disposition']).toContain("filename*=UTF-8''kliniken-results.csv");
  });

  test('when the batch is unknown, then 404', async () => {
    stack = await startStack();

    const res = await request(stack.app).get('/batches/6f1c2a9e-9d7e-4c1b-8f4e-2b7d3c1a0e55/results.csv');

    expect(res.status).toBe(404);
  });
});
