"""The database schema, as numbered migrations.

``PRAGMA user_version`` holds how many have been applied; each runs in the same transaction as the bump,
so a database is always at one version. Append new migrations; never edit one that has shipped.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: contacts, their provenance, uploads and suppressions
    """
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE contacts (
        id INTEGER PRIMARY KEY,
        email TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL DEFAULT '',
        city TEXT NOT NULL DEFAULT '',
        country TEXT NOT NULL DEFAULT '',
        region TEXT NOT NULL DEFAULT '',
        language TEXT NOT NULL DEFAULT '' CHECK (language IN ('', 'en', 'es')),
        position TEXT NOT NULL DEFAULT '',
        timezone TEXT NOT NULL DEFAULT '',
        attributes TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE uploads (
        id INTEGER PRIMARY KEY,
        network TEXT NOT NULL,
        filename TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        source TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'done')),
        created_at TEXT NOT NULL,
        finished_at TEXT,
        rows INTEGER NOT NULL DEFAULT 0,
        imported INTEGER NOT NULL DEFAULT 0,
        updated INTEGER NOT NULL DEFAULT 0,
        duplicates INTEGER NOT NULL DEFAULT 0,
        conflicts INTEGER NOT NULL DEFAULT 0,
        rejected INTEGER NOT NULL DEFAULT 0,
        errors TEXT NOT NULL DEFAULT '[]'
    );
    CREATE TABLE contact_sources (
        upload_id INTEGER NOT NULL REFERENCES uploads(id),
        row INTEGER NOT NULL,
        contact_id INTEGER NOT NULL REFERENCES contacts(id),
        network TEXT NOT NULL COLLATE NOCASE,
        PRIMARY KEY (upload_id, row)
    );
    CREATE INDEX contact_sources_contact ON contact_sources(contact_id, upload_id);
    CREATE INDEX contact_sources_network ON contact_sources(network, contact_id);
    CREATE TABLE contact_conflicts (
        id INTEGER PRIMARY KEY,
        contact_id INTEGER NOT NULL REFERENCES contacts(id),
        upload_id INTEGER NOT NULL REFERENCES uploads(id),
        row INTEGER NOT NULL,
        field TEXT NOT NULL,
        current TEXT NOT NULL,
        proposed TEXT NOT NULL
    );
    CREATE INDEX contact_conflicts_contact ON contact_conflicts(contact_id);
    CREATE TABLE suppressions (
        email TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('opt_out', 'bounce', 'manual')),
        reason TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL
    );
    """,
    # 2: waves, their plan, recipients (one per wave and contact) and the outbox
    """
    CREATE TABLE waves (
        id INTEGER PRIMARY KEY,
        slug TEXT NOT NULL UNIQUE,
        title TEXT NOT NULL,
        platform TEXT NOT NULL CHECK (platform IN ('qualtrics', 'typeform', 'surveymonkey', 'signed')),
        survey_id TEXT NOT NULL,
        survey_url TEXT NOT NULL,
        survey_url_es TEXT NOT NULL DEFAULT '',
        start_at TEXT,
        reminders TEXT NOT NULL DEFAULT '[]',
        close_after INTEGER NOT NULL,
        networks TEXT NOT NULL DEFAULT '[]',
        interview_question TEXT NOT NULL DEFAULT '',
        interview_yes TEXT NOT NULL DEFAULT '',
        required TEXT NOT NULL DEFAULT '[]',
        state TEXT NOT NULL DEFAULT 'draft' CHECK (state IN ('draft', 'scheduled', 'open', 'closed')),
        paused INTEGER NOT NULL DEFAULT 0,
        launched_at TEXT,
        closes_at TEXT,
        closed_at TEXT,
        created_at TEXT NOT NULL
    );
    CREATE TABLE wave_steps (
        id INTEGER PRIMARY KEY,
        wave_id INTEGER NOT NULL REFERENCES waves(id),
        kind TEXT NOT NULL CHECK (kind IN ('invitation', 'reminder', 'final_reminder', 'close')),
        due_at TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'skipped', 'cancelled')),
        done_at TEXT,
        enqueued INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX wave_steps_due ON wave_steps(state, due_at);
    CREATE TABLE recipients (
        id INTEGER PRIMARY KEY,
        wave_id INTEGER NOT NULL REFERENCES waves(id),
        contact_id INTEGER NOT NULL REFERENCES contacts(id),
        token_hash TEXT NOT NULL UNIQUE,
        invited_at TEXT NOT NULL,
        completed_at TEXT,
        UNIQUE (wave_id, contact_id)
    );
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        wave_id INTEGER REFERENCES waves(id),
        contact_id INTEGER REFERENCES contacts(id),
        kind TEXT NOT NULL,
        to_email TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'queued'
            CHECK (state IN ('queued', 'sending', 'sent', 'failed', 'cancelled')),
        attempts INTEGER NOT NULL DEFAULT 0,
        due_at TEXT NOT NULL,
        created_at TEXT NOT NULL,
        sent_at TEXT,
        last_error TEXT NOT NULL DEFAULT '',
        message_id TEXT,
        recovered INTEGER NOT NULL DEFAULT 0,
        payload TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX outbox_due ON outbox(state, due_at);
    CREATE INDEX outbox_wave ON outbox(wave_id, kind, state);
    """,
    # 3: webhooks, responses (complete ones only: partials leave an audit line), interview opt-ins, API tokens
    """
    CREATE TABLE webhook_inbox (
        id INTEGER PRIMARY KEY,
        wave_id INTEGER NOT NULL REFERENCES waves(id),
        platform TEXT NOT NULL,
        survey_id TEXT NOT NULL,
        response_id TEXT NOT NULL,
        event TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        due_at TEXT NOT NULL,
        last_error TEXT NOT NULL DEFAULT '',
        received_at TEXT NOT NULL,
        processed_at TEXT,
        UNIQUE (platform, response_id, event)
    );
    CREATE INDEX webhook_inbox_due ON webhook_inbox(state, due_at);
    CREATE TABLE responses (
        id INTEGER PRIMARY KEY,
        wave_id INTEGER NOT NULL REFERENCES waves(id),
        platform TEXT NOT NULL,
        response_id TEXT NOT NULL,
        contact_id INTEGER REFERENCES contacts(id),
        status TEXT NOT NULL CHECK (status IN ('complete', 'unmatched')),
        duplicate TEXT NOT NULL DEFAULT '' CHECK (duplicate IN ('', 'contact', 'city')),
        answers TEXT NOT NULL DEFAULT '{}',
        embedded TEXT NOT NULL DEFAULT '{}',
        recorded_at TEXT,
        received_at TEXT NOT NULL,
        UNIQUE (platform, response_id)
    );
    CREATE INDEX responses_wave ON responses(wave_id, contact_id);
    CREATE TABLE partial_audit (
        id INTEGER PRIMARY KEY,
        wave_id INTEGER NOT NULL REFERENCES waves(id),
        platform TEXT NOT NULL,
        response_id TEXT NOT NULL,
        progress INTEGER,
        reason TEXT NOT NULL,
        recorded_at TEXT,
        received_at TEXT NOT NULL,
        UNIQUE (platform, response_id)
    );
    CREATE TABLE interview_queue (
        id INTEGER PRIMARY KEY,
        wave_id INTEGER NOT NULL REFERENCES waves(id),
        contact_id INTEGER NOT NULL REFERENCES contacts(id),
        response_id TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'queued',
        notes TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (wave_id, contact_id)
    );
    CREATE TABLE api_tokens (
        id INTEGER PRIMARY KEY,
        role TEXT NOT NULL CHECK (role IN ('coordinator', 'network', 'researcher')),
        network TEXT COLLATE NOCASE,
        token_hash TEXT NOT NULL UNIQUE,
        label TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        revoked_at TEXT
    );
    CREATE TABLE webhook_seen (
        platform TEXT NOT NULL,
        message_id TEXT NOT NULL,
        received_at TEXT NOT NULL,
        PRIMARY KEY (platform, message_id)
    );
    """,
    # 4: interview scheduling: researchers' slots; the queue gains its booking, reminders and expiry
    """
    CREATE TABLE interview_slots (
        id INTEGER PRIMARY KEY,
        researcher TEXT NOT NULL COLLATE NOCASE,
        starts_at TEXT NOT NULL,
        ends_at TEXT NOT NULL,
        timezone TEXT NOT NULL DEFAULT 'UTC',
        meeting_url TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        UNIQUE (researcher, starts_at)
    );
    CREATE INDEX interview_slots_start ON interview_slots(starts_at);
    ALTER TABLE interview_queue ADD COLUMN slot_id INTEGER REFERENCES interview_slots(id);
    ALTER TABLE interview_queue ADD COLUMN sequence INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE interview_queue ADD COLUMN invited_at TEXT;
    ALTER TABLE interview_queue ADD COLUMN expires_at TEXT;
    ALTER TABLE interview_queue ADD COLUMN booked_at TEXT;
    -- One booking per slot, whichever process books it: the loser of a race gets a constraint error.
    CREATE UNIQUE INDEX interview_queue_slot ON interview_queue(slot_id) WHERE slot_id IS NOT NULL;
    ALTER TABLE waves ADD COLUMN interview_auto_invite INTEGER NOT NULL DEFAULT 0;
    """,
    # 5: partial audit lines name their recipient; one serve per database (a lease); each network's own
    #    listing of a contact, and which listing supplies the values used in e-mail
    """
    ALTER TABLE partial_audit ADD COLUMN contact_id INTEGER REFERENCES contacts(id);
    CREATE INDEX partial_audit_wave ON partial_audit(wave_id, contact_id);
    CREATE TABLE service_lease (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        pid INTEGER NOT NULL,
        host TEXT NOT NULL,
        started_at TEXT NOT NULL,
        heartbeat_at TEXT NOT NULL
    );
    CREATE TABLE contact_listings (
        contact_id INTEGER NOT NULL REFERENCES contacts(id),
        network TEXT NOT NULL COLLATE NOCASE,
        name TEXT NOT NULL DEFAULT '',
        city TEXT NOT NULL DEFAULT '',
        country TEXT NOT NULL DEFAULT '',
        region TEXT NOT NULL DEFAULT '',
        language TEXT NOT NULL DEFAULT '',
        position TEXT NOT NULL DEFAULT '',
        timezone TEXT NOT NULL DEFAULT '',
        attributes TEXT NOT NULL DEFAULT '{}',
        first_upload_id INTEGER REFERENCES uploads(id),
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (contact_id, network)
    );
    CREATE INDEX contact_listings_network ON contact_listings(network, contact_id);
    -- Listings of contacts imported before: each network that listed a contact sees its values as they are.
    INSERT OR IGNORE INTO contact_listings (contact_id, network, name, city, country, region, language, position,
                                            timezone, attributes, first_upload_id, created_at, updated_at)
        SELECT c.id, s.network, c.name, c.city, c.country, c.region, c.language, c.position, c.timezone,
               c.attributes, MIN(s.upload_id), c.created_at, c.updated_at
        FROM contact_sources s JOIN contacts c ON c.id = s.contact_id
        GROUP BY c.id, s.network;
    -- '' = the merged values (the first listing's, blanks filled by later ones); else the network whose
    -- listing a coordinator chose.
    ALTER TABLE contacts ADD COLUMN values_from TEXT NOT NULL DEFAULT '';
    """,
    # 6: signing in to the web pages (server-side sessions, single-use sign-in codes), researchers' tokens tied
    #    to a researcher, and whether a wave shows partner networks who answered
    """
    CREATE TABLE web_sessions (
        id_hash TEXT PRIMARY KEY,
        token_id INTEGER NOT NULL REFERENCES api_tokens(id),
        csrf TEXT NOT NULL,
        language TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        last_seen_at TEXT NOT NULL,
        expires_at TEXT NOT NULL
    );
    CREATE INDEX web_sessions_token ON web_sessions(token_id);
    CREATE TABLE login_codes (
        code_hash TEXT PRIMARY KEY,
        token_id INTEGER NOT NULL REFERENCES api_tokens(id),
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        used_at TEXT
    );
    ALTER TABLE api_tokens ADD COLUMN email TEXT COLLATE NOCASE;
    ALTER TABLE waves ADD COLUMN share_status_with_networks INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX responses_day ON responses(wave_id, status, received_at);
    CREATE INDEX recipients_contact ON recipients(contact_id);
    """,
    # 7: launch guard-rails and the Spanish side: leave out contacts already in another open wave, a Spanish
    #    title, closing at the end of the last day
    """
    ALTER TABLE waves ADD COLUMN skip_overlap INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE waves ADD COLUMN title_es TEXT NOT NULL DEFAULT '';
    ALTER TABLE waves ADD COLUMN close_at_end_of_day INTEGER NOT NULL DEFAULT 0;
    """,
    # 8: working hours: the wave's time zone and send window
    """
    ALTER TABLE waves ADD COLUMN timezone TEXT NOT NULL DEFAULT '';
    ALTER TABLE waves ADD COLUMN send_window TEXT NOT NULL DEFAULT '';
    ALTER TABLE waves ADD COLUMN send_days TEXT NOT NULL DEFAULT '';
    """,
    # 9: suppressions lifted by a coordinator (a mistaken opt-out), kept for the record
    """
    CREATE TABLE suppression_lifts (
        id INTEGER PRIMARY KEY,
        email TEXT NOT NULL,
        kind TEXT NOT NULL,
        reason TEXT NOT NULL,
        suppressed_at TEXT NOT NULL,
        lifted_at TEXT NOT NULL,
        lift_reason TEXT NOT NULL
    );
    """,
    # 10: mail that comes back (mailbox/): each message read once, replies kept for the coordinator, messages
    #     returned after the relay took them, per-wave holds; sent Message-IDs looked up by a bounce
    """
    CREATE TABLE mailbox_messages (
        digest TEXT PRIMARY KEY,
        mailbox TEXT NOT NULL,
        outcome TEXT NOT NULL,
        outbox_id INTEGER,
        read_at TEXT NOT NULL
    );
    CREATE TABLE mail_replies (
        id INTEGER PRIMARY KEY,
        digest TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL CHECK (kind IN ('reply', 'auto_reply', 'bounce')),
        wave_id INTEGER REFERENCES waves(id),
        contact_id INTEGER REFERENCES contacts(id),
        sender TEXT NOT NULL DEFAULT '',
        subject TEXT NOT NULL DEFAULT '',
        sent_date TEXT NOT NULL DEFAULT '',
        excerpt TEXT NOT NULL DEFAULT '',
        marker TEXT NOT NULL DEFAULT '',
        received_at TEXT NOT NULL
    );
    CREATE INDEX mail_replies_wave ON mail_replies(wave_id, kind);
    CREATE INDEX mail_replies_contact ON mail_replies(contact_id);
    CREATE TABLE mail_returns (
        id INTEGER PRIMARY KEY,
        outbox_id INTEGER NOT NULL UNIQUE REFERENCES outbox(id),
        wave_id INTEGER REFERENCES waves(id),
        email TEXT NOT NULL,
        severity TEXT NOT NULL CHECK (severity IN ('hard', 'failed')),
        status TEXT NOT NULL DEFAULT '',
        diagnostic TEXT NOT NULL DEFAULT '',
        received_at TEXT NOT NULL
    );
    CREATE INDEX mail_returns_wave ON mail_returns(wave_id, severity);
    CREATE TABLE wave_holds (
        wave_id INTEGER NOT NULL REFERENCES waves(id),
        email TEXT NOT NULL,
        reason TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (wave_id, email)
    );
    -- A held address gets nothing more from its wave, whichever code path queues the message.
    CREATE TRIGGER outbox_wave_hold AFTER INSERT ON outbox
    WHEN NEW.state = 'queued' AND NEW.kind NOT LIKE 'interview%'
         AND EXISTS (SELECT 1 FROM wave_holds h WHERE h.wave_id = NEW.wave_id AND h.email = NEW.to_email)
    BEGIN
        UPDATE outbox SET state = 'cancelled', last_error = 'held: earlier messages of this wave to this address failed'
        WHERE id = NEW.id;
    END;
    CREATE INDEX outbox_message_id ON outbox(message_id) WHERE message_id IS NOT NULL;
    """,
    # 11: responses pulled as well as pushed: LimeSurvey as a platform (the platform check is part of the table,
    #     so the table is rebuilt, as SQLite's ALTER TABLE cannot change a CHECK), each wave's intake (webhook or
    #     poll) and in-progress timeout, and where each wave's pulls stand
    """
    CREATE TABLE waves_new (
        id INTEGER PRIMARY KEY,
        slug TEXT NOT NULL UNIQUE,
        title TEXT NOT NULL,
        platform TEXT NOT NULL CHECK (platform IN ('qualtrics', 'typeform', 'surveymonkey', 'signed', 'limesurvey')),
        survey_id TEXT NOT NULL,
        survey_url TEXT NOT NULL,
        survey_url_es TEXT NOT NULL DEFAULT '',
        start_at TEXT,
        reminders TEXT NOT NULL DEFAULT '[]',
        close_after INTEGER NOT NULL,
        networks TEXT NOT NULL DEFAULT '[]',
        interview_question TEXT NOT NULL DEFAULT '',
        interview_yes TEXT NOT NULL DEFAULT '',
        required TEXT NOT NULL DEFAULT '[]',
        state TEXT NOT NULL DEFAULT 'draft' CHECK (state IN ('draft', 'scheduled', 'open', 'closed')),
        paused INTEGER NOT NULL DEFAULT 0,
        launched_at TEXT,
        closes_at TEXT,
        closed_at TEXT,
        created_at TEXT NOT NULL,
        interview_auto_invite INTEGER NOT NULL DEFAULT 0,
        share_status_with_networks INTEGER NOT NULL DEFAULT 0,
        skip_overlap INTEGER NOT NULL DEFAULT 0,
        title_es TEXT NOT NULL DEFAULT '',
        close_at_end_of_day INTEGER NOT NULL DEFAULT 0,
        timezone TEXT NOT NULL DEFAULT '',
        send_window TEXT NOT NULL DEFAULT '',
        send_days TEXT NOT NULL DEFAULT '',
        intake TEXT NOT NULL DEFAULT 'webhook' CHECK (intake IN ('webhook', 'poll')),
        in_progress_timeout INTEGER NOT NULL DEFAULT 604800
    );
    INSERT INTO waves_new (id, slug, title, platform, survey_id, survey_url, survey_url_es, start_at, reminders,
        close_after, networks, interview_question, interview_yes, required, state, paused, launched_at, closes_at,
        closed_at, created_at, interview_auto_invite, share_status_with_networks, skip_overlap, title_es,
        close_at_end_of_day, timezone, send_window, send_days)
    SELECT id, slug, title, platform, survey_id, survey_url, survey_url_es, start_at, reminders,
        close_after, networks, interview_question, interview_yes, required, state, paused, launched_at, closes_at,
        closed_at, created_at, interview_auto_invite, share_status_with_networks, skip_overlap, title_es,
        close_at_end_of_day, timezone, send_window, send_days FROM waves;
    DROP TABLE waves;
    ALTER TABLE waves_new RENAME TO waves;
    CREATE TABLE wave_pulls (
        wave_id INTEGER PRIMARY KEY REFERENCES waves(id),
        cursor TEXT,
        next_at TEXT,
        last_started_at TEXT,
        last_done_at TEXT,
        last_error TEXT NOT NULL DEFAULT '',
        refused INTEGER NOT NULL DEFAULT 0,
        recorded INTEGER NOT NULL DEFAULT 0,
        enrolled INTEGER NOT NULL DEFAULT 0
    );
    """,
    # 12: a response is one per wave, not one per platform: LimeSurvey numbers each survey's responses from 1 (and a
    #     generic sender may too), so two waves' response 1 are two responses. The UNIQUE constraints are part of
    #     the tables, so these are rebuilt; what they hold satisfies the new, looser constraints as it is.
    """
    CREATE TABLE webhook_inbox_new (
        id INTEGER PRIMARY KEY,
        wave_id INTEGER NOT NULL REFERENCES waves(id),
        platform TEXT NOT NULL,
        survey_id TEXT NOT NULL,
        response_id TEXT NOT NULL,
        event TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        due_at TEXT NOT NULL,
        last_error TEXT NOT NULL DEFAULT '',
        received_at TEXT NOT NULL,
        processed_at TEXT,
        UNIQUE (wave_id, platform, response_id, event)
    );
    INSERT INTO webhook_inbox_new (id, wave_id, platform, survey_id, response_id, event, state, attempts, due_at,
        last_error, received_at, processed_at)
    SELECT id, wave_id, platform, survey_id, response_id, event, state, attempts, due_at,
        last_error, received_at, processed_at FROM webhook_inbox;
    DROP TABLE webhook_inbox;
    ALTER TABLE webhook_inbox_new RENAME TO webhook_inbox;
    CREATE INDEX webhook_inbox_due ON webhook_inbox(state, due_at);
    CREATE TABLE responses_new (
        id INTEGER PRIMARY KEY,
        wave_id INTEGER NOT NULL REFERENCES waves(id),
        platform TEXT NOT NULL,
        response_id TEXT NOT NULL,
        contact_id INTEGER REFERENCES contacts(id),
        status TEXT NOT NULL CHECK (status IN ('complete', 'unmatched')),
        duplicate TEXT NOT NULL DEFAULT '' CHECK (duplicate IN ('', 'contact', 'city')),
        answers TEXT NOT NULL DEFAULT '{}',
        embedded TEXT NOT NULL DEFAULT '{}',
        recorded_at TEXT,
        received_at TEXT NOT NULL,
        UNIQUE (wave_id, platform, response_id)
    );
    INSERT INTO responses_new (id, wave_id, platform, response_id, contact_id, status, duplicate, answers, embedded,
        recorded_at, received_at)
    SELECT id, wave_id, platform, response_id, contact_id, status, duplicate, answers, embedded,
        recorded_at, received_at FROM responses;
    DROP TABLE responses;
    ALTER TABLE responses_new RENAME TO responses;
    CREATE INDEX responses_wave ON responses(wave_id, contact_id);
    CREATE INDEX responses_day ON responses(wave_id, status, received_at);
    CREATE TABLE partial_audit_new (
        id INTEGER PRIMARY KEY,
        wave_id INTEGER NOT NULL REFERENCES waves(id),
        platform TEXT NOT NULL,
        response_id TEXT NOT NULL,
        progress INTEGER,
        reason TEXT NOT NULL,
        recorded_at TEXT,
        received_at TEXT NOT NULL,
        contact_id INTEGER REFERENCES contacts(id),
        UNIQUE (wave_id, platform, response_id)
    );
    INSERT INTO partial_audit_new (id, wave_id, platform, response_id, progress, reason, recorded_at, received_at,
        contact_id)
    SELECT id, wave_id, platform, response_id, progress, reason, recorded_at, received_at, contact_id
    FROM partial_audit;
    DROP TABLE partial_audit;
    ALTER TABLE partial_audit_new RENAME TO partial_audit;
    CREATE INDEX partial_audit_wave ON partial_audit(wave_id, contact_id);
    """,
]
