import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import type { ApiError } from './api.js';

/** An API error as the console shows it: the stable code first, then the message. */
export function ErrorBox({ error }: { error: ApiError | null }) {
  if (!error) return null;
  // The API's index of the failing statement, counted from 0 as in its messages.
  const statement = typeof error.details.statement === 'number' ? ` (statement index ${error.details.statement})` : '';
  return (
    <div class="error" role="alert" data-testid="error">
      <code data-testid="error-code">{error.code}</code> {error.message}
      {statement}
    </div>
  );
}

/**
 * A destructive button that asks first: the first click shows what will happen and a confirming
 * button; with `typeToConfirm`, that button stays disabled until the name is typed.
 */
export function ConfirmButton(props: {
  label: string;
  confirmLabel: string;
  question: ComponentChildren;
  typeToConfirm?: string;
  disabled?: boolean;
  title?: string;
  testId?: string;
  onConfirm: () => Promise<void> | void;
}) {
  const [asking, setAsking] = useState(false);
  const [typed, setTyped] = useState('');
  const [busy, setBusy] = useState(false);
  if (!asking) {
    return (
      <button class="danger" disabled={props.disabled} title={props.title} data-testid={props.testId} onClick={() => setAsking(true)}>
        {props.label}
      </button>
    );
  }
  const ready = props.typeToConfirm === undefined || typed === props.typeToConfirm;
  return (
    <span class="confirm" data-testid={props.testId ? `${props.testId}-confirm` : undefined}>
      <span>{props.question}</span>
      {props.typeToConfirm !== undefined && (
        <input
          placeholder={props.typeToConfirm}
          value={typed}
          data-testid="confirm-input"
          onInput={(event) => setTyped(event.currentTarget.value)}
        />
      )}
      <button
        class="danger"
        disabled={!ready || busy}
        data-testid="confirm-yes"
        onClick={async () => {
          setBusy(true);
          try {
            await props.onConfirm();
          } finally {
            setBusy(false);
            setAsking(false);
            setTyped('');
          }
        }}
      >
        {props.confirmLabel}
      </button>
      <button onClick={() => setAsking(false)}>Cancel</button>
    </span>
  );
}

export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

export function formatAge(iso: string): string {
  const seconds = (Date.now() - Date.parse(iso)) / 1000;
  return seconds < 1 ? 'now' : seconds < 120 ? `${seconds.toFixed(1)} s ago` : `${Math.round(seconds / 60)} min ago`;
}

/** Save a Blob as a file the browser downloads. */
export function saveBlob(blob: Blob, fileName: string): void {
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = fileName;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
