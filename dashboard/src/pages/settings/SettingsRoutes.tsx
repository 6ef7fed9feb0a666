import { Alert } from '@mantine/core';
import { Navigate, Route, Routes } from 'react-router';
import { isAdmin, useSession } from '../../auth/auth';
import { ContactsSettings } from './ContactsSettings';
import { DepartmentsSettings } from './DepartmentsSettings';
import { HoursSettings } from './HoursSettings';
import { KbSettings } from './KbSettings';
import { NumbersSettings } from './NumbersSettings';
import { ProvidersSettings } from './ProvidersSettings';
import { ScreeningSettings } from './ScreeningSettings';
import { SmsSettings } from './SmsSettings';
import { UsersSettings } from './UsersSettings';

export default function SettingsRoutes() {
  const { me, tenantId } = useSession();
  if (!isAdmin(me)) {
    return (
      <Alert color="yellow" title="Admins only">
        Settings can be changed by your account's admins.
      </Alert>
    );
  }
  if (me.role === 'superadmin' && !tenantId) {
    return (
      <Alert color="indigo" title="Pick a tenant">
        Settings belong to one tenant: choose it in the tenant menu at the top.
      </Alert>
    );
  }
  return (
    <Routes>
      <Route index element={<Navigate to="numbers" replace />} />
      <Route path="numbers" element={<NumbersSettings />} />
      <Route path="hours" element={<HoursSettings />} />
      <Route path="departments" element={<DepartmentsSettings />} />
      <Route path="kb" element={<KbSettings />} />
      <Route path="screening" element={<ScreeningSettings />} />
      <Route path="sms" element={<SmsSettings />} />
      <Route path="providers" element={<ProvidersSettings />} />
      <Route path="contacts" element={<ContactsSettings />} />
      <Route path="users" element={<UsersSettings />} />
      <Route path="*" element={<Navigate to="numbers" replace />} />
    </Routes>
  );
}
