import { Center, Loader } from '@mantine/core';
import { lazy, Suspense, type ReactNode } from 'react';
import { Navigate, Route, Routes } from 'react-router';
import { RequireAuth, UnauthorizedRedirect } from './auth/auth';
import { AppLayout } from './components/AppLayout';
import { CallDetailPage } from './pages/CallDetailPage';
import { InboxPage } from './pages/InboxPage';
import { LiveCallPage } from './pages/LiveCallPage';
import { LiveCallsPage } from './pages/LiveCallsPage';
import { LoginPage } from './pages/LoginPage';
import { NotFoundPage } from './pages/NotFoundPage';

const DialerPage = lazy(() => import('./pages/DialerPage'));
const SettingsRoutes = lazy(() => import('./pages/settings/SettingsRoutes'));

function Lazy({ children }: { children: ReactNode }) {
  return (
    <Suspense
      fallback={
        <Center p="xl">
          <Loader aria-label="Loading" />
        </Center>
      }
    >
      {children}
    </Suspense>
  );
}

export function App() {
  return (
    <>
      <UnauthorizedRedirect />
      <Routes>
        <Route path="/login" element={<LoginPage />} />
        <Route
          element={
            <RequireAuth>
              <AppLayout />
            </RequireAuth>
          }
        >
          <Route index element={<Navigate to="/calls" replace />} />
          <Route path="calls" element={<InboxPage />} />
          <Route path="calls/:id" element={<CallDetailPage />} />
          <Route path="calls/:id/live" element={<LiveCallPage />} />
          <Route path="live" element={<LiveCallsPage />} />
          <Route
            path="dialer"
            element={
              <Lazy>
                <DialerPage />
              </Lazy>
            }
          />
          <Route
            path="settings/*"
            element={
              <Lazy>
                <SettingsRoutes />
              </Lazy>
            }
          />
          <Route path="*" element={<NotFoundPage />} />
        </Route>
      </Routes>
    </>
  );
}
