-- Which process writes a streaming reply, so that opening the database in a second process (the
-- CLI while the app streams) marks only the replies of processes that died as interrupted.
-- NULL for replies written before this: they are judged as before, by their status alone.
ALTER TABLE messages ADD COLUMN writer TEXT;
