-- What the Azure-compatible API keeps about a registration beyond the native fields: its
-- resource group, the stack identity's object id, and its ARM tags (JSON text).
ALTER TABLE registrations ADD COLUMN azure_resource_group TEXT;
ALTER TABLE registrations ADD COLUMN azure_object_id TEXT;
ALTER TABLE registrations ADD COLUMN azure_tags TEXT;
