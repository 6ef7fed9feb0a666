import { Alert, Badge, Button, Center, Group, Text, Tooltip } from '@mantine/core';
import { useInfiniteQuery, useQueryClient } from '@tanstack/react-query';
import { useMemo, useRef, useState } from 'react';
import { useSearchParams } from 'react-router';
import { api } from '../api/client';
import type { CallPage } from '../api/types';
import { CallsTable } from '../components/CallsTable';
import { EmptyState, ErrorState, Loading, PageTitle } from '../components/common';
import { InboxFiltersBar } from '../components/InboxFiltersBar';
import { applyLiveToInbox, type InboxData } from '../live/inbox';
import type { LiveStatus } from '../live/socket';
import { useLiveSocket } from '../live/useLiveSocket';
import { hasFilters, parseFilters, toApiFilters, writeFilters, type InboxFilters } from '../lib/filters';

export const PAGE_SIZE = 50;

export function LiveStatusBadge({ status }: { status: LiveStatus }) {
  const map: Record<LiveStatus, [string, string, string]> = {
    open: ['green', 'Live', 'New calls appear as they come in.'],
    connecting: ['gray', 'Connecting…', 'Opening the live connection.'],
    reconnecting: ['orange', 'Reconnecting…', 'The live connection dropped; retrying.'],
    closed: ['gray', 'Offline', 'Live updates are off.'],
  };
  const [color, text, tip] = map[status];
  return (
    <Tooltip label={tip}>
      <Badge color={color} variant="dot" data-testid="live-status">
        {text}
      </Badge>
    </Tooltip>
  );
}

export function InboxPage() {
  const [params, setParams] = useSearchParams();
  const filters = useMemo(() => parseFilters(params), [params]);
  const apiFilters = useMemo(() => toApiFilters(filters), [filters]);
  const queryKey = useMemo(() => ['calls', 'list', apiFilters] as const, [apiFilters]);
  const qc = useQueryClient();
  const [fresh, setFresh] = useState<ReadonlySet<string>>(new Set());
  const [unplaced, setUnplaced] = useState(0);

  const calls = useInfiniteQuery({
    queryKey,
    queryFn: ({ pageParam, signal }) => api.listCalls({ ...apiFilters, cursor: pageParam, limit: PAGE_SIZE }, signal),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last: CallPage) => last.next_cursor ?? undefined,
  });

  const current = useRef({ queryKey, filters });
  current.current = { queryKey, filters };

  const status = useLiveSocket({
    onMessage: (msg) => {
      const { queryKey: key, filters: f } = current.current;
      const old = qc.getQueryData<InboxData>(key);
      const res = applyLiveToInbox(old, msg, f);
      if (res.data !== old) qc.setQueryData<InboxData>(key, res.data);
      if (msg.type === 'call_started' && res.data !== old) setFresh((s) => new Set(s).add(msg.call.id));
      if (res.unplaced) setUnplaced((n) => n + 1);
    },
    onOpen: (isReconnect) => {
      // Nothing is replayed over the socket: re-read what may have been missed while it was down.
      if (isReconnect) void qc.invalidateQueries({ queryKey: ['calls', 'list'] });
    },
  });

  const setFilters = (next: InboxFilters, opts?: { replace?: boolean }) => {
    setUnplaced(0);
    setParams(writeFilters(params, next), { replace: opts?.replace });
  };

  const items = calls.data?.pages.flatMap((p) => p.items) ?? [];

  return (
    <>
      <PageTitle right={<LiveStatusBadge status={status} />}>Inbox</PageTitle>
      <InboxFiltersBar filters={filters} onChange={setFilters} />

      {unplaced > 0 && (
        <Alert color="indigo" mb="sm" p="xs">
          <Group justify="space-between">
            <Text size="sm">
              {unplaced === 1 ? 'A new call' : `${unplaced} new calls`} may match your search.
            </Text>
            <Button
              size="xs"
              variant="light"
              onClick={() => {
                setUnplaced(0);
                void calls.refetch();
              }}
            >
              Show
            </Button>
          </Group>
        </Alert>
      )}

      {calls.isPending ? (
        <Loading label="Loading calls" />
      ) : !calls.data ? (
        <ErrorState error={calls.error} onRetry={() => calls.refetch()} />
      ) : items.length === 0 ? (
        hasFilters(filters) ? (
          <EmptyState title="No calls match these filters">Try a wider date range or clear the filters.</EmptyState>
        ) : (
          <EmptyState title="No calls yet">Calls to your numbers will show up here as they happen.</EmptyState>
        )
      ) : (
        <>
          <CallsTable calls={items} highlight={fresh} />
          <Center mt="md">
            {calls.hasNextPage ? (
              <Button variant="default" onClick={() => calls.fetchNextPage()} loading={calls.isFetchingNextPage}>
                Load more
              </Button>
            ) : (
              <Text size="sm" c="dimmed">
                {items.length === 1 ? '1 call' : `${items.length} calls`} — that is all.
              </Text>
            )}
          </Center>
          {calls.isFetchNextPageError && (
            <Text c="red" size="sm" ta="center" mt="xs">
              Could not load more calls: {calls.error?.message}
            </Text>
          )}
        </>
      )}
    </>
  );
}
