import { Button, Group, Select, SimpleGrid, TextInput } from '@mantine/core';
import { DatePickerInput } from '@mantine/dates';
import { useDebouncedCallback } from '@mantine/hooks';
import { useEffect, useState } from 'react';
import { FILTER_KEYS } from '../lib/filters';
import { CALL_MODES, CALL_OUTCOMES, SCREENING_LABELS } from '../api/types';
import { hasFilters, type InboxFilters } from '../lib/filters';
import { humanize } from '../lib/format';
import { LABEL_TEXT } from '../lib/labels';

const LABEL_OPTIONS = [
  ...SCREENING_LABELS.map((l) => ({ value: l, label: LABEL_TEXT[l] })),
  { value: 'none', label: 'Not screened' },
];
const MODE_OPTIONS = CALL_MODES.map((m) => ({ value: m, label: humanize(m) }));
const OUTCOME_OPTIONS = CALL_OUTCOMES.map((o) => ({ value: o, label: humanize(o) }));

/** A text box that edits its own copy and reports it after a pause (or on Enter). */
function DebouncedText({
  value,
  onCommit,
  ...props
}: {
  value: string;
  onCommit: (v: string) => void;
  label: string;
  placeholder?: string;
  type?: string;
  className?: string;
}) {
  const [text, setText] = useState(value);
  useEffect(() => setText(value), [value]);
  const commit = useDebouncedCallback((v: string) => onCommit(v.trim()), 400);
  return (
    <TextInput
      {...props}
      value={text}
      onChange={(e) => {
        setText(e.currentTarget.value);
        commit(e.currentTarget.value);
      }}
      onKeyDown={(e) => {
        if (e.key === 'Enter') {
          commit.cancel?.();
          onCommit(text.trim());
        }
      }}
    />
  );
}

export function InboxFiltersBar({
  filters,
  onChange,
}: {
  filters: InboxFilters;
  /** `replace`: a typing edit that should not add a history entry. */
  onChange: (next: InboxFilters, opts?: { replace?: boolean }) => void;
}) {
  const set = (patch: Partial<InboxFilters>, replace = false) => onChange({ ...filters, ...patch }, { replace });
  // On a phone only the search box shows until "Filters" is tapped (CSS in app.css).
  const active = FILTER_KEYS.filter((k) => k !== 'q' && filters[k]).length;
  const [open, setOpen] = useState(active > 0);
  return (
    <SimpleGrid cols={{ base: 2, sm: 3, lg: 7 }} spacing="xs" mb="md" className="cg-filters" data-open={open}>
      <DebouncedText
        label="Search"
        placeholder="Words said on the call"
        value={filters.q ?? ''}
        onCommit={(q) => set({ q: q || undefined }, true)}
      />
      <Group align="flex-end" hiddenFrom="sm">
        <Button variant="default" fullWidth onClick={() => setOpen((o) => !o)} aria-expanded={open}>
          {open ? 'Hide filters' : active ? `Filters (${active})` : 'Filters'}
        </Button>
      </Group>
      <Select
        className="cg-more"
        label="Label"
        placeholder="Any"
        clearable
        data={LABEL_OPTIONS}
        value={filters.label ?? null}
        onChange={(v) => set({ label: (v as InboxFilters['label']) ?? undefined })}
      />
      <Select
        className="cg-more"
        label="Mode"
        placeholder="Any"
        clearable
        data={MODE_OPTIONS}
        value={filters.mode ?? null}
        onChange={(v) => set({ mode: (v as InboxFilters['mode']) ?? undefined })}
      />
      <Select
        className="cg-more"
        label="Outcome"
        placeholder="Any"
        clearable
        data={OUTCOME_OPTIONS}
        value={filters.outcome ?? null}
        onChange={(v) => set({ outcome: (v as InboxFilters['outcome']) ?? undefined })}
      />
      <DebouncedText
        className="cg-more"
        label="From number"
        placeholder="+1555… (* = prefix)"
        type="tel"
        value={filters.from ?? ''}
        onCommit={(from) => set({ from: from || undefined }, true)}
      />
      <DatePickerInput
        className="cg-more"
        type="range"
        label="Dates"
        placeholder="Any time"
        clearable
        allowSingleDateInRange
        valueFormat="MMM D"
        value={[filters.since ?? null, filters.until ?? null]}
        onChange={([since, until]) => {
          // Wait for both ends before filtering (a half-picked range is still being edited).
          if (since && !until) return;
          set({ since: since ? String(since).slice(0, 10) : undefined, until: until ? String(until).slice(0, 10) : undefined });
        }}
      />
      <Group align="flex-end" className="cg-more">
        <Button
          variant="subtle"
          disabled={!hasFilters(filters)}
          onClick={() => onChange({}, { replace: false })}
          fullWidth
        >
          Clear filters
        </Button>
      </Group>
    </SimpleGrid>
  );
}
