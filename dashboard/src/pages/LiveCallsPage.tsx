import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../api/client';
import type { CallPage, CallSummary } from '../api/types';
import { CallsTable } from '../components/CallsTable';
import { EmptyState, ErrorState, Loading, PageTitle } from '../components/common';
import { useLiveSocket } from '../live/useLiveSocket';
import { LiveStatusBadge } from './InboxPage';

const KEY = ['calls', 'live'] as const;

function upsert(items: CallSummary[], call: CallSummary): CallSummary[] {
  const rest = items.filter((c) => c.id !== call.id);
  return call.live ? [call, ...rest].sort((a, b) => Date.parse(b.started_at) - Date.parse(a.started_at)) : rest;
}

export function LiveCallsPage() {
  const qc = useQueryClient();
  const calls = useQuery({ queryKey: KEY, queryFn: ({ signal }) => api.listCalls({ live: true, limit: 200 }, signal) });
  const status = useLiveSocket({
    onMessage: (msg) => {
      if (msg.type === 'turn') return;
      qc.setQueryData<CallPage>(KEY, (old) =>
        old ? { ...old, items: upsert(old.items, msg.type === 'call_ended' ? { ...msg.call, live: false } : msg.call) } : old,
      );
    },
    onOpen: (isReconnect) => {
      if (isReconnect) void qc.invalidateQueries({ queryKey: KEY });
    },
  });
  return (
    <>
      <PageTitle right={<LiveStatusBadge status={status} />}>Live calls</PageTitle>
      {calls.isPending ? (
        <Loading />
      ) : calls.isError ? (
        <ErrorState error={calls.error} onRetry={() => calls.refetch()} />
      ) : calls.data.items.length === 0 ? (
        <EmptyState title="No call is going on right now">Calls appear here the moment they start.</EmptyState>
      ) : (
        <CallsTable calls={calls.data.items} />
      )}
    </>
  );
}
