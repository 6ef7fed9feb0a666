import { Button, Card, Group, Stack, Text, Textarea } from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { api } from '../../api/client';
import type { TenantSettings } from '../../api/types';
import { ErrorState, Loading, PageTitle } from '../../components/common';
import { useSettingsMutation } from './shared';

export const SMS_MAX = 480;

function SmsForm({ tenant }: { tenant: TenantSettings }) {
  const [text, setText] = useState(tenant.text_back_template);
  const preview = text.split('{business}').join(tenant.name);
  const save = useSettingsMutation(() => api.patchTenant({ text_back_template: text }), {
    success: 'Text-back message saved.',
    failure: 'Could not save the message',
    invalidate: ['tenant'],
  });
  const error = text.trim() === '' ? 'The message cannot be empty.' : preview.length > SMS_MAX ? `At most ${SMS_MAX} characters.` : undefined;
  return (
    <Stack maw={640}>
      <Textarea
        label="Message"
        description="{business} is replaced by your business name."
        autosize
        minRows={3}
        value={text}
        onChange={(e) => setText(e.currentTarget.value)}
        error={error}
      />
      <Text size="xs" c={preview.length > SMS_MAX ? 'red' : 'dimmed'}>
        {preview.length} / {SMS_MAX} characters · {Math.max(1, Math.ceil(preview.length / 160))} SMS
      </Text>
      <Card withBorder bg="gray.0">
        <Text size="xs" c="dimmed" mb={4}>
          Preview
        </Text>
        <Text size="sm">{preview}</Text>
      </Card>
      <Group>
        <Button onClick={() => save.mutate(undefined)} loading={save.isPending} disabled={!!error || text === tenant.text_back_template}>
          Save
        </Button>
      </Group>
    </Stack>
  );
}

export function SmsSettings() {
  const tenant = useQuery({ queryKey: ['tenant'], queryFn: () => api.getTenant() });
  return (
    <>
      <PageTitle>SMS text-back</PageTitle>
      <Text size="sm" c="dimmed" mb="md">
        In forward mode, a caller you did not answer gets this text. Their replies reach you, and the AI answers if
        nobody replies within a minute.
      </Text>
      {tenant.isPending ? (
        <Loading />
      ) : tenant.isError ? (
        <ErrorState error={tenant.error} onRetry={() => tenant.refetch()} />
      ) : (
        <SmsForm key={tenant.data.updated_at} tenant={tenant.data} />
      )}
    </>
  );
}
