-- Parking lots: every log entry names the lot of its call (NULL: the general lot).
ALTER TABLE event_log ADD COLUMN lot TEXT;
ALTER TABLE parked_call ADD COLUMN lot TEXT;
