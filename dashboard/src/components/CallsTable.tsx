import { Anchor, Badge, Group, Stack, Table, Text, Tooltip } from '@mantine/core';
import { Link, useNavigate } from 'react-router';
import type { CallSummary } from '../api/types';
import {
  formatCallTime,
  formatConfidence,
  formatDateTime,
  formatDuration,
  formatPhone,
  humanize,
  OUTCOME_COLORS,
} from '../lib/format';
import { LabelBadge, LiveBadge } from './common';

export function callHref(c: CallSummary): string {
  return c.live ? `/calls/${c.id}/live` : `/calls/${c.id}`;
}

function Outcome({ call }: { call: CallSummary }) {
  if (call.live) return <LiveBadge />;
  if (!call.outcome) return <Text size="sm">—</Text>;
  return (
    <Badge variant="dot" color={OUTCOME_COLORS[call.outcome]} size="sm">
      {humanize(call.outcome)}
    </Badge>
  );
}

export function CallsTable({ calls, highlight }: { calls: CallSummary[]; highlight?: ReadonlySet<string> }) {
  const navigate = useNavigate();
  return (
    <Table.ScrollContainer minWidth={320}>
      <Table highlightOnHover verticalSpacing="xs" aria-label="Calls">
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Time</Table.Th>
            <Table.Th>From</Table.Th>
            <Table.Th visibleFrom="sm">Label</Table.Th>
            <Table.Th visibleFrom="sm">Intent</Table.Th>
            <Table.Th visibleFrom="md">Confidence</Table.Th>
            <Table.Th visibleFrom="sm">Duration</Table.Th>
            <Table.Th visibleFrom="lg">Outcome</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {calls.map((c) => (
            <Table.Tr
              key={c.id}
              data-call-id={c.id}
              className={highlight?.has(c.id) ? 'cg-row-link cg-row-new' : 'cg-row-link'}
              onClick={(e) => {
                if ((e.target as HTMLElement).closest('a')) return;
                navigate(callHref(c));
              }}
            >
              <Table.Td style={{ whiteSpace: 'nowrap', verticalAlign: 'top' }} w={1}>
                <Tooltip label={formatDateTime(c.started_at)} openDelay={400}>
                  <Anchor component={Link} to={callHref(c)} size="sm" c="inherit">
                    {formatCallTime(c.started_at)}
                  </Anchor>
                </Tooltip>
              </Table.Td>
              <Table.Td>
                <Stack gap={0}>
                  <Text size="sm" style={{ whiteSpace: 'nowrap' }} data-testid="call-from">
                    {formatPhone(c.from)}
                  </Text>
                  {c.caller_name && (
                    <Text size="xs" c="dimmed" truncate maw={200}>
                      {c.caller_name}
                    </Text>
                  )}
                  {c.intent && (
                    <Text size="xs" c="dimmed" hiddenFrom="sm" lineClamp={2}>
                      {c.intent}
                    </Text>
                  )}
                  <Group gap={6} hiddenFrom="sm" mt={4} wrap="nowrap">
                    <LabelBadge label={c.label} />
                    {c.live ? <LiveBadge /> : <Text size="xs" c="dimmed">{formatDuration(c.duration_s)}</Text>}
                  </Group>
                </Stack>
              </Table.Td>
              <Table.Td miw={130} visibleFrom="sm" data-testid="call-label">
                <Group gap={4} wrap="nowrap">
                  <LabelBadge label={c.label} />
                  {c.live && (
                    <Text hiddenFrom="lg" component="span">
                      <span className="cg-live-dot" aria-label="live" />
                    </Text>
                  )}
                </Group>
              </Table.Td>
              <Table.Td visibleFrom="sm" maw={380}>
                <Text size="sm" lineClamp={1} title={c.intent ?? undefined}>
                  {c.intent || '—'}
                </Text>
              </Table.Td>
              <Table.Td visibleFrom="md">
                <Text size="sm">{formatConfidence(c.confidence)}</Text>
              </Table.Td>
              <Table.Td visibleFrom="sm" style={{ whiteSpace: 'nowrap' }} data-testid="call-duration">
                <Text size="sm">{c.live ? 'live' : formatDuration(c.duration_s)}</Text>
              </Table.Td>
              <Table.Td visibleFrom="lg" miw={150}>
                <Outcome call={c} />
              </Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
    </Table.ScrollContainer>
  );
}
