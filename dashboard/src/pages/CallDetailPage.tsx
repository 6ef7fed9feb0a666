import { Alert, Anchor, Badge, Button, Card, Grid, Group, Stack, Text, Title } from '@mantine/core';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Link, useNavigate, useParams } from 'react-router';
import { api, isApiError } from '../api/client';
import type { CallDetail } from '../api/types';
import { isAdmin, useSession } from '../auth/auth';
import { MetadataCard, LeadCard, RecordingCard, ScreeningCard } from '../components/CallPanels';
import { EmptyState, ErrorState, LabelBadge, LiveBadge, Loading, notifyError, notifySuccess } from '../components/common';
import { ConfirmButton } from '../components/ConfirmButton';
import { TranscriptView } from '../components/Transcript';
import { formatPhone } from '../lib/format';

export const callKey = (id: string) => ['calls', 'detail', id] as const;

export function CallActions({ call }: { call: CallDetail }) {
  const qc = useQueryClient();
  const { me } = useSession();
  const navigate = useNavigate();
  const dialable = call.from.startsWith('+');

  const onDone = (msg: string) => {
    notifySuccess(msg);
    void qc.invalidateQueries({ queryKey: callKey(call.id) });
  };
  const block = useMutation({
    mutationFn: () => api.blockCaller(call.id),
    onSuccess: () => onDone(`${formatPhone(call.from)} is blocked. Future calls from it are rejected.`),
    onError: (e) => notifyError('Could not block the caller', e),
  });
  const known = useMutation({
    mutationFn: () => api.markKnown(call.id, call.caller_name ?? undefined),
    onSuccess: () => onDone(`${formatPhone(call.from)} is now a known contact and skips screening.`),
    onError: (e) => notifyError('Could not mark as known', e),
  });
  const del = useMutation({
    mutationFn: () => api.deleteCall(call.id),
    onSuccess: () => {
      notifySuccess('The call and its recording were deleted.');
      qc.removeQueries({ queryKey: callKey(call.id) });
      void qc.invalidateQueries({ queryKey: ['calls', 'list'] });
      navigate('/calls', { replace: true });
    },
    onError: (e) => notifyError('Could not delete the call', e),
  });

  return (
    <Group gap="xs">
      <ConfirmButton
        color="red"
        variant="light"
        size="xs"
        disabled={!dialable || call.contact?.kind === 'block'}
        loading={block.isPending}
        title="Block this caller?"
        message={`Calls from ${formatPhone(call.from)} will be rejected from now on. You can undo this under Settings → Allow & block list.`}
        confirmLabel="Block caller"
        onConfirm={() => block.mutate()}
      >
        {call.contact?.kind === 'block' ? 'Blocked' : 'Block caller'}
      </ConfirmButton>
      <ConfirmButton
        color="green"
        variant="light"
        size="xs"
        disabled={!dialable || call.contact?.kind === 'allow'}
        loading={known.isPending}
        title="Mark as known?"
        message={`${formatPhone(call.from)} will be put straight through without screening.`}
        confirmLabel="Mark as known"
        onConfirm={() => known.mutate()}
      >
        {call.contact?.kind === 'allow' ? 'Known contact' : 'Mark as known'}
      </ConfirmButton>
      {isAdmin(me) && (
        <ConfirmButton
          color="gray"
          variant="subtle"
          size="xs"
          loading={del.isPending}
          title="Delete this call?"
          message="The call, its transcript and its recording are deleted for good."
          confirmLabel="Delete"
          onConfirm={() => del.mutate()}
        >
          Delete
        </ConfirmButton>
      )}
    </Group>
  );
}

export function CallDetailView({ call }: { call: CallDetail }) {
  return (
    <>
      <Group justify="space-between" mb="md" align="flex-start" gap="xs">
        <Stack gap={4}>
          <Group gap="xs">
            <Title order={2} size="h3">
              {formatPhone(call.from)}
            </Title>
            <LabelBadge label={call.label} />
            {call.live && <LiveBadge />}
          </Group>
          {call.caller_name && <Text c="dimmed">{call.caller_name}</Text>}
          {call.intent && <Text size="sm">{call.intent}</Text>}
        </Stack>
        <CallActions call={call} />
      </Group>

      {call.live && (
        <Alert color="red" variant="light" mb="md">
          <Group justify="space-between">
            <Text size="sm">This call is still going on.</Text>
            <Button component={Link} to={`/calls/${call.id}/live`} size="xs" color="red">
              Follow it live
            </Button>
          </Group>
        </Alert>
      )}

      <Grid gap="md">
        <Grid.Col span={{ base: 12, md: 7, lg: 8 }} order={{ base: 2, md: 1 }}>
          <Card withBorder>
            <Title order={3} size="h5" mb="sm">
              Transcript
            </Title>
            {call.summary && (
              <Alert variant="light" color="indigo" mb="sm" title="Summary">
                {call.summary}
              </Alert>
            )}
            {call.transcript.length === 0 ? (
              <EmptyState title="No transcript">Nothing was said on this call, or it was not transcribed.</EmptyState>
            ) : (
              <TranscriptView turns={call.transcript} callStartedAt={call.answered_at ?? call.started_at} />
            )}
          </Card>
        </Grid.Col>
        <Grid.Col span={{ base: 12, md: 5, lg: 4 }} order={{ base: 1, md: 2 }}>
          <Stack gap="md">
            <ScreeningCard screening={call.screening} />
            <LeadCard lead={call.lead} />
            <RecordingCard recording={call.recording} />
            <MetadataCard call={call} />
            {call.contact && (
              <Badge variant="light" color={call.contact.kind === 'block' ? 'red' : 'green'}>
                {call.contact.kind === 'block' ? 'Caller is blocked' : 'Caller is a known contact'}
              </Badge>
            )}
          </Stack>
        </Grid.Col>
      </Grid>
    </>
  );
}

export function CallDetailPage() {
  const { id = '' } = useParams();
  const call = useQuery({ queryKey: callKey(id), queryFn: ({ signal }) => api.getCall(id, signal) });
  return (
    <>
      <Anchor component={Link} to="/calls" size="sm" mb="sm" display="inline-block">
        ← Inbox
      </Anchor>
      {call.isPending ? (
        <Loading label="Loading call" />
      ) : call.isError ? (
        isApiError(call.error) && call.error.status === 404 ? (
          <EmptyState title="Call not found">It may have been deleted.</EmptyState>
        ) : (
          <ErrorState error={call.error} onRetry={() => call.refetch()} />
        )
      ) : (
        <CallDetailView call={call.data} />
      )}
    </>
  );
}
