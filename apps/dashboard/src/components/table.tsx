import type { ReactNode } from 'react';
import { ErrorNote, Loading } from './ui';

export interface Column<T> {
  header: string;
  cell: (row: T) => ReactNode;
  /** `hide-sm` leaves the column out on a phone; `mono`, `strong`, ... style its cells. */
  className?: string;
}

/**
 * The table every page shows: the load error (kept beside the last good rows), "Loading…"
 * before the first load, a line when there are no rows, and rows that may open a page.
 */
export function DataTable<T>(props: {
  rows: T[] | undefined;
  columns: Column<T>[];
  rowKey: (row: T) => string;
  what: string;
  empty: ReactNode;
  error?: unknown;
  testId?: string;
  onRowClick?: (row: T) => void;
}) {
  const { rows, columns } = props;
  return (
    <>
      <ErrorNote error={props.error} />
      {!rows ? (
        <Loading what={props.what} />
      ) : !rows.length ? (
        <div className="empty-row">{props.empty}</div>
      ) : (
        <div className="table-wrap">
          <table className="table" data-testid={props.testId}>
            <thead>
              <tr>
                {columns.map((c) => (
                  <th key={c.header} className={c.className?.includes('hide-sm') ? 'hide-sm' : undefined}>
                    {c.header}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => (
                <tr key={props.rowKey(r)} className={props.onRowClick ? 'clickable' : undefined} onClick={props.onRowClick && (() => props.onRowClick!(r))}>
                  {columns.map((c) => (
                    <td key={c.header} className={c.className}>
                      {c.cell(r)}
                    </td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}
