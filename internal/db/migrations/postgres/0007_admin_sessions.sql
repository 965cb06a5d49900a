-- The plane a session was created on: 'public' (the public listener's web
-- UI) or 'admin' (the admin listener's UI). A session is accepted only on
-- its own plane, so one listener's cookie is useless on the other.
ALTER TABLE sessions ADD COLUMN plane TEXT NOT NULL DEFAULT 'public';
