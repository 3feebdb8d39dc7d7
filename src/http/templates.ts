import { Router } from 'express';
import { FIELDS } from '../bulk/columns.js';
import { writeWorkbook } from '../bulk/xlsxWrite.js';

const EXAMPLE = ['General Hospital', '1 Main St, Springfield', '555-0100'];

// The BOM is what makes Excel open a UTF-8 CSV as UTF-8 rather than in the machine's code page.
const TEMPLATE_CSV = `\uFEFF${FIELDS.join(',')}\r\n${EXAMPLE.map((v) => (/[",\r\n]/.test(v) ? `"${v.replaceAll('"', '""')}"` : v)).join(',')}\r\n`;
const TEMPLATE_XLSX = writeWorkbook([[...FIELDS], EXAMPLE]);
export const XLSX_TYPE = 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet';

/** GET /template.csv and GET /template.xlsx: a file to start from, public like the page. */
export function templateRoutes(): Router {
  const router = Router();
  router.get('/template.csv', (_req, res) => {
    res.attachment('hospitals-template.csv').type('text/csv; charset=utf-8').send(TEMPLATE_CSV);
  });
  router.get('/template.xlsx', (_req, res) => {
    res.attachment('hospitals-template.xlsx').type(XLSX_TYPE).send(TEMPLATE_XLSX);
  });
  return router;
}
