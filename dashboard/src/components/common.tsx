import { Alert, Badge, Button, Center, Group, Loader, Stack, Text, Title } from '@mantine/core';
import { notifications } from '@mantine/notifications';
import type { ReactNode } from 'react';
import { isApiError } from '../api/client';
import type { ScreeningLabel } from '../api/types';
import { LABEL_COLORS, LABEL_TEXT } from '../lib/labels';

export function LabelBadge({ label }: { label: ScreeningLabel | null }) {
  if (!label) {
    return (
      <Badge color="gray" variant="outline" data-label="none" style={{ flexShrink: 0 }} styles={{ label: { overflow: "visible" } }}>
        Not screened
      </Badge>
    );
  }
  return (
    <Badge color={LABEL_COLORS[label]} variant="light" data-label={label} style={{ flexShrink: 0 }} styles={{ label: { overflow: "visible" } }}>
      {LABEL_TEXT[label]}
    </Badge>
  );
}

export function LiveBadge() {
  return (
    <Badge color="red" variant="light" leftSection={<span className="cg-live-dot" aria-hidden />}>
      Live
    </Badge>
  );
}

export function errorMessage(e: unknown): string {
  if (isApiError(e)) return e.message;
  if (e instanceof Error) return e.message;
  return 'Something went wrong.';
}

export function notifyError(title: string, e: unknown) {
  notifications.show({ color: 'red', title, message: errorMessage(e) });
}

export function notifySuccess(message: string, title?: string) {
  notifications.show({ color: 'green', title, message });
}

export function PageTitle({ children, right }: { children: ReactNode; right?: ReactNode }) {
  return (
    <Group justify="space-between" mb="md" wrap="wrap" gap="xs">
      <Title order={2} size="h3">
        {children}
      </Title>
      {right}
    </Group>
  );
}

export function Loading({ label = 'Loading' }: { label?: string }) {
  return (
    <Center p="xl">
      <Loader aria-label={label} />
    </Center>
  );
}

export function ErrorState({ error, onRetry }: { error: unknown; onRetry?: () => void }) {
  const forbidden = isApiError(error) && error.status === 403;
  return (
    <Alert color="red" title={forbidden ? 'Not allowed' : 'Could not load'} role="alert">
      <Stack gap="xs" align="flex-start">
        <Text size="sm">{forbidden ? 'Your role may not see this page.' : errorMessage(error)}</Text>
        {onRetry && !forbidden && (
          <Button size="xs" variant="light" color="red" onClick={onRetry}>
            Try again
          </Button>
        )}
      </Stack>
    </Alert>
  );
}

export function EmptyState({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <Stack align="center" gap={4} py="xl" ta="center">
      <Text fw={600}>{title}</Text>
      {children && (
        <Text size="sm" c="dimmed">
          {children}
        </Text>
      )}
    </Stack>
  );
}
