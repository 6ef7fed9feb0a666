import { Anchor, Badge, Card, Group, Progress, SimpleGrid, Stack, Text, Title } from '@mantine/core';
import type { CallDetail, Lead, Recording, Screening } from '../api/types';
import { formatConfidence, formatDateTime, formatDuration, formatPhone, humanize, OUTCOME_COLORS } from '../lib/format';
import { LABEL_COLORS } from '../lib/labels';
import { LabelBadge } from './common';

function Field({ label, children }: { label: string; children: React.ReactNode }) {
  return (
    <div>
      <Text size="xs" c="dimmed">
        {label}
      </Text>
      <Text size="sm" style={{ wordBreak: 'break-word' }}>
        {children ?? '—'}
      </Text>
    </div>
  );
}

/** What Twilio's StirVerstat values mean, in words. */
export function describeVerstat(v: string | null): string {
  if (!v) return 'Not reported';
  if (v.endsWith('-Passed-A')) return `${v} (full attestation: the carrier knows the caller owns the number)`;
  if (v.endsWith('-Passed-B')) return `${v} (partial attestation)`;
  if (v.endsWith('-Passed-C')) return `${v} (gateway attestation only)`;
  if (v.includes('Failed')) return `${v} (verification failed)`;
  return v;
}

export function ScreeningCard({ screening }: { screening: Screening | null }) {
  return (
    <Card withBorder>
      <Title order={3} size="h5" mb="xs">
        Classification
      </Title>
      {!screening ? (
        <Text size="sm" c="dimmed">
          This call was not screened.
        </Text>
      ) : (
        <Stack gap="xs">
          <Group gap="xs">
            <LabelBadge label={screening.label} />
            {screening.action && (
              <Badge variant="outline" color="gray">
                {humanize(screening.action)}
              </Badge>
            )}
          </Group>
          <Text size="sm" fw={500}>
            {screening.intent || 'No intent given'}
          </Text>
          <div>
            <Group justify="space-between">
              <Text size="xs" c="dimmed">
                Confidence
              </Text>
              <Text size="xs" data-testid="confidence">
                {formatConfidence(screening.confidence)}
              </Text>
            </Group>
            <Progress value={screening.confidence * 100} color={LABEL_COLORS[screening.label]} size="sm" />
          </div>
          <div>
            <Text size="xs" c="dimmed">
              Rationale
            </Text>
            {screening.rationale === null ? (
              <Text size="sm" c="dimmed" fs="italic">
                Visible to admins only.
              </Text>
            ) : (
              <Text size="sm" data-testid="rationale">
                {screening.rationale || '—'}
              </Text>
            )}
          </div>
        </Stack>
      )}
    </Card>
  );
}

export function LeadCard({ lead }: { lead: Lead | null }) {
  return (
    <Card withBorder data-testid="lead-card">
      <Title order={3} size="h5" mb="xs">
        Lead
      </Title>
      {!lead ? (
        <Text size="sm" c="dimmed">
          No lead captured.
        </Text>
      ) : (
        <Stack gap={6}>
          <Group justify="space-between">
            <Text fw={600}>{lead.name ?? 'Unnamed caller'}</Text>
            <Badge color={lead.urgency === 'high' ? 'red' : lead.urgency === 'low' ? 'gray' : 'blue'}>
              {lead.urgency} urgency
            </Badge>
          </Group>
          {lead.callback_number && (
            <Anchor href={`tel:${lead.callback_number}`} size="sm">
              Call back {formatPhone(lead.callback_number)}
            </Anchor>
          )}
          <Text size="sm">{lead.reason || 'No reason given.'}</Text>
          {lead.handled_at && (
            <Text size="xs" c="dimmed">
              Handled {formatDateTime(lead.handled_at)}
            </Text>
          )}
        </Stack>
      )}
    </Card>
  );
}

export function RecordingCard({ recording }: { recording: Recording | null }) {
  return (
    <Card withBorder data-testid="recording-card">
      <Title order={3} size="h5" mb="xs">
        Recording
      </Title>
      {!recording ? (
        <Text size="sm" c="dimmed">
          No recording for this call.
        </Text>
      ) : recording.status === 'completed' ? (
        <Stack gap={4}>
          <audio controls preload="none" src={recording.url} style={{ width: '100%' }}>
            <a href={recording.url}>Download the recording</a>
          </audio>
          <Text size="xs" c="dimmed">
            {formatDuration(recording.duration_s)}
          </Text>
        </Stack>
      ) : (
        <Text size="sm" c="dimmed">
          Recording {humanize(recording.status).toLowerCase()}.
        </Text>
      )}
    </Card>
  );
}

export function MetadataCard({ call }: { call: CallDetail }) {
  return (
    <Card withBorder>
      <Title order={3} size="h5" mb="xs">
        Call
      </Title>
      <SimpleGrid cols={2} spacing="xs" verticalSpacing="xs">
        <Field label="From">{formatPhone(call.from)}</Field>
        <Field label="To">{formatPhone(call.to)}</Field>
        <Field label="Caller name">{call.caller_name}</Field>
        <Field label="Direction">{humanize(call.direction)}</Field>
        <Field label="Mode">{humanize(call.mode)}</Field>
        <Field label="Outcome">
          {call.outcome ? (
            <Badge variant="dot" color={OUTCOME_COLORS[call.outcome]} size="sm">
              {humanize(call.outcome)}
            </Badge>
          ) : call.live ? (
            'In progress'
          ) : (
            '—'
          )}
        </Field>
        <Field label="Started">{formatDateTime(call.started_at)}</Field>
        <Field label="Answered">{formatDateTime(call.answered_at)}</Field>
        <Field label="Ended">{formatDateTime(call.ended_at)}</Field>
        <Field label="Duration">{formatDuration(call.duration_s)}</Field>
        <Field label="Status">{humanize(call.status)}</Field>
        {call.forwarded_from && <Field label="Forwarded from">{formatPhone(call.forwarded_from)}</Field>}
        <Field label="Node">{[call.node_id, call.region].filter(Boolean).join(' · ') || null}</Field>
      </SimpleGrid>
      <Stack gap="xs" mt="xs">
        <Field label="STIR/SHAKEN">{describeVerstat(call.stir_verstat)}</Field>
        <Field label="Call SID">
          <Text span ff="monospace" size="xs">
            {call.call_sid}
          </Text>
        </Field>
      </Stack>
    </Card>
  );
}
