import { Alert, Button, Center, Paper, PasswordInput, Stack, Text, TextInput, Title } from '@mantine/core';
import { useQueryClient } from '@tanstack/react-query';
import { useState, type FormEvent } from 'react';
import { useNavigate, useSearchParams } from 'react-router';
import { api, isApiError } from '../api/client';
import { ME_KEY } from '../auth/auth';

function safeNext(next: string | null): string {
  // Only same-site paths: never an open redirect to another origin.
  return next && next.startsWith('/') && !next.startsWith('//') ? next : '/calls';
}

export function LoginPage() {
  const [params] = useSearchParams();
  const navigate = useNavigate();
  const qc = useQueryClient();
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setBusy(true);
    try {
      const res = await api.login(email.trim(), password);
      qc.setQueryData(ME_KEY, res.user);
      navigate(safeNext(params.get('next')), { replace: true });
    } catch (err) {
      if (isApiError(err, 'invalid_credentials') || (isApiError(err) && err.status === 401)) {
        setError('Wrong e-mail or password.');
      } else if (isApiError(err, 'rate_limited')) {
        setError('Too many attempts. Wait a minute and try again.');
      } else {
        setError(err instanceof Error ? err.message : 'Could not sign in.');
      }
    } finally {
      setBusy(false);
    }
  };

  return (
    <Center mih="100vh" p="md" bg="gray.0">
      <Paper withBorder shadow="sm" p="xl" w="100%" maw={400} radius="md">
        <form onSubmit={submit} noValidate>
          <Stack>
            <div>
              <Title order={1} size="h2" c="indigo.7">
                callgate
              </Title>
              <Text c="dimmed" size="sm">
                Sign in to see your calls.
              </Text>
            </div>
            {error && (
              <Alert color="red" role="alert">
                {error}
              </Alert>
            )}
            <TextInput
              label="E-mail"
              type="email"
              autoComplete="username"
              required
              value={email}
              onChange={(e) => setEmail(e.currentTarget.value)}
            />
            <PasswordInput
              label="Password"
              autoComplete="current-password"
              required
              value={password}
              onChange={(e) => setPassword(e.currentTarget.value)}
            />
            <Button type="submit" loading={busy} disabled={!email || !password}>
              Sign in
            </Button>
          </Stack>
        </form>
      </Paper>
    </Center>
  );
}
