import { Alert, Anchor, Button, Card, Grid, Group, Stack, Switch, Text, Title } from '@mantine/core';
import { useInterval } from '@mantine/hooks';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect, useReducer, useRef, useState } from 'react';
import { Link, useParams } from 'react-router';
import { api, isApiError } from '../api/client';
import type { CallDetail } from '../api/types';
import { ScreeningCard } from '../components/CallPanels';
import { EmptyState, ErrorState, LabelBadge, LiveBadge, Loading, notifyError, notifySuccess } from '../components/common';
import { TranscriptView } from '../components/Transcript';
import { formatDuration, formatPhone, humanize } from '../lib/format';
import { initialLiveCall, liveCallReducer } from '../live/transcript';
import { useLiveSocket } from '../live/useLiveSocket';
import { callKey } from './CallDetailPage';
import { LiveStatusBadge } from './InboxPage';

function Elapsed({ since }: { since: string }) {
  const [now, setNow] = useState(() => Date.now());
  const interval = useInterval(() => setNow(Date.now()), 1000);
  useEffect(() => {
    interval.start();
    return interval.stop;
  }, [interval]);
  return <Text size="sm">{formatDuration(Math.max(0, (now - Date.parse(since)) / 1000))}</Text>;
}

function RecordingControls({ call }: { call: CallDetail | null }) {
  const qc = useQueryClient();
  const rec = useMutation({
    mutationFn: (action: 'start' | 'stop') => api.setRecording(call!.id, action),
    onSuccess: (_r, action) => {
      notifySuccess(action === 'start' ? 'Recording started.' : 'Recording stopped.');
      void qc.invalidateQueries({ queryKey: callKey(call!.id) });
    },
    onError: (e) => notifyError('Could not change the recording', e),
  });
  if (!call) return null;
  const recording = call.recording?.status === 'in_progress';
  return (
    <Button
      size="xs"
      variant="light"
      color={recording ? 'gray' : 'red'}
      loading={rec.isPending}
      onClick={() => rec.mutate(recording ? 'stop' : 'start')}
    >
      {recording ? 'Stop recording' : 'Start recording'}
    </Button>
  );
}

export function LiveCallPage() {
  const { id = '' } = useParams();
  const [state, dispatch] = useReducer(liveCallReducer, id, initialLiveCall);
  const [follow, setFollow] = useState(true);
  const [gone, setGone] = useState(false);
  const bottom = useRef<HTMLDivElement>(null);

  const detail = useQuery({ queryKey: callKey(id), queryFn: ({ signal }) => api.getCall(id, signal) });
  useEffect(() => {
    if (detail.data) dispatch({ type: 'snapshot', call: detail.data });
  }, [detail.data]);

  const status = useLiveSocket({
    callId: id,
    enabled: !state.ended && !gone,
    onMessage: (msg) => dispatch({ type: 'message', msg }),
    // After a reconnect, turns said meanwhile are only in the database.
    onOpen: (isReconnect) => {
      if (isReconnect) void detail.refetch();
    },
    onNotFound: () => setGone(true),
  });

  useEffect(() => {
    if (follow) bottom.current?.scrollIntoView?.({ block: 'end', behavior: 'smooth' });
  }, [state.turns, follow]);

  const call = state.call;
  const full = (call && 'transcript' in call ? call : detail.data) ?? null;

  if (detail.isPending && !call) return <Loading label="Loading call" />;
  if (detail.isError && !call) {
    return isApiError(detail.error) && detail.error.status === 404 ? (
      <EmptyState title="Call not found" />
    ) : (
      <ErrorState error={detail.error} onRetry={() => detail.refetch()} />
    );
  }

  return (
    <>
      <Anchor component={Link} to="/live" size="sm" mb="sm" display="inline-block">
        ← Live calls
      </Anchor>
      <Group justify="space-between" mb="md" gap="xs">
        <Group gap="xs">
          <Title order={2} size="h3">
            {formatPhone(call?.from)}
          </Title>
          {call && <LabelBadge label={call.label} />}
          {state.ended ? <Text c="dimmed">Ended</Text> : <LiveBadge />}
          {!state.ended && call && <Elapsed since={call.started_at} />}
        </Group>
        <Group gap="xs">
          {!state.ended && <LiveStatusBadge status={status} />}
          {!state.ended && <RecordingControls call={full} />}
          <Switch size="sm" label="Auto-scroll" checked={follow} onChange={(e) => setFollow(e.currentTarget.checked)} />
        </Group>
      </Group>

      {state.ended && (
        <Alert color="gray" mb="md" data-testid="call-ended">
          <Group justify="space-between">
            <Text size="sm">
              The call has ended{call?.outcome ? ` — ${humanize(call.outcome).toLowerCase()}` : ''}
              {call?.duration_s != null ? ` after ${formatDuration(call.duration_s)}` : ''}.
            </Text>
            <Button component={Link} to={`/calls/${id}`} size="xs" variant="light">
              View details
            </Button>
          </Group>
        </Alert>
      )}

      <Grid gap="md">
        <Grid.Col span={{ base: 12, md: 8 }}>
          <Card withBorder>
            {state.turns.length === 0 ? (
              <EmptyState title={state.ended ? 'Nothing was said' : 'Waiting for the first words…'} />
            ) : (
              <TranscriptView turns={state.turns} callStartedAt={call?.started_at} />
            )}
            <div ref={bottom} />
          </Card>
        </Grid.Col>
        <Grid.Col span={{ base: 12, md: 4 }}>
          <Stack>
            <ScreeningCard
              screening={
                full?.screening ??
                (call?.label
                  ? { label: call.label, intent: call.intent ?? '', confidence: call.confidence ?? 0, rationale: null, action: null }
                  : null)
              }
            />
            {call && (
              <Card withBorder>
                <Text size="xs" c="dimmed">
                  Mode
                </Text>
                <Text size="sm">{humanize(call.mode)}</Text>
                <Text size="xs" c="dimmed" mt="xs">
                  To
                </Text>
                <Text size="sm">{formatPhone(call.to)}</Text>
              </Card>
            )}
          </Stack>
        </Grid.Col>
      </Grid>
    </>
  );
}
