"""Every phrase of the signed-in pages (sign-in, dashboard, partner view), as (English, Spanish)."""

from __future__ import annotations

from babel import Locale
from babel.numbers import format_decimal, format_percent

PHRASES = {
    # sign-in and navigation
    "sign_in": ("Sign in", "Iniciar sesión"),
    "sign_in_intro": (
        "Type the access token you were given (it starts with sbt_). You stay signed in on this "
        "browser until you sign out, for 12 hours at most.",
        "Escriba la clave de acceso que recibió (empieza por sbt_). La sesión sigue abierta en este "
        "navegador hasta que la cierre, 12 horas como máximo.",
    ),
    "token": ("Access token", "Clave de acceso"),
    "bad_token": (
        "That access token is not valid (or was revoked).",
        "Esa clave de acceso no es válida (o fue revocada).",
    ),
    "bad_link": (
        "This sign-in link is not valid: it was used already or has expired. Sign in with a token, or "
        "restart the service for a new link.",
        "Este enlace de acceso no es válido: ya se usó o caducó. Inicie sesión con una clave, o reinicie "
        "el servicio para obtener un enlace nuevo.",
    ),
    "unreadable": (
        "The form could not be read; please send it again.",
        "No se pudo leer el formulario; envíelo de nuevo.",
    ),
    "csrf": (
        "This form is out of date or did not come from this site. Reload the page and try again.",
        "Este formulario está desactualizado o no viene de este sitio. Recargue la página e inténtelo de nuevo.",
    ),
    "not_for_you": ("Your access token does not open this page.", "Su clave de acceso no abre esta página."),
    "sign_out": ("Sign out", "Cerrar sesión"),
    "sign_out_question": (
        "Sign out of surveybot on this browser?",
        "¿Cerrar la sesión de surveybot en este navegador?",
    ),
    "waves": ("Waves", "Oleadas"),
    "interviews": ("Interviews", "Entrevistas"),
    "signed_in_as": ("Signed in: {who}", "Sesión: {who}"),
    "role_coordinator": ("coordinator", "coordinación"),
    "role_researcher": ("researcher", "investigación"),
    "role_network": ("network {network}", "red {network}"),
    "back": ("Back", "Volver"),
    "cancel": ("Cancel", "Cancelar"),
    # the list of waves
    "no_wave": ("There is no wave {wave} here.", "Aquí no hay ninguna oleada {wave}."),
    "no_waves": (
        "No waves yet: create one with 'surveybot wave create'.",
        "Aún no hay oleadas: cree una con 'surveybot wave create'.",
    ),
    "wave": ("Wave", "Oleada"),
    "state": ("State", "Estado"),
    "start": ("Start", "Inicio"),
    "closes": ("Closes", "Cierre"),
    "state_draft": ("draft", "borrador"),
    "state_scheduled": ("scheduled", "programada"),
    "state_open": ("open", "abierta"),
    "state_paused": ("paused", "en pausa"),
    "state_closed": ("closed", "cerrada"),
    # the funnel
    "funnel": ("Funnel", "Embudo"),
    "invited": ("Invited", "Invitados"),
    "sent": ("Sent", "Enviados"),
    "bounced": ("Bounced", "Rebotados"),
    "delivered": ("Delivered", "Entregados"),
    "completed": ("Completed", "Completados"),
    "opted_out": ("Opted out", "Bajas"),
    "partial_discarded": ("Partial, discarded", "Parciales descartadas"),
    "duplicates": ("Duplicates", "Duplicadas"),
    "unmatched": ("Unmatched responses", "Respuestas sin destinatario"),
    "intake": ("How responses come in", "Cómo llegan las respuestas"),
    "intake_webhook": (
        "The survey platform sends each response as it is recorded (webhook).",
        "La plataforma de encuestas envía cada respuesta al registrarla (webhook).",
    ),
    "intake_poll": (
        "Responses are pulled from the survey platform every few minutes.",
        "Las respuestas se descargan de la plataforma de encuestas cada pocos minutos.",
    ),
    "last_pull": ("Last pull:", "Última descarga:"),
    "pull_failed": ("The last pull failed:", "La última descarga falló:"),
    "pull_refused": (
        "Credentials missing or refused by the platform (tried again hourly):",
        "Faltan las credenciales o la plataforma las rechazó (se reintenta cada hora):",
    ),
    "intake_failed": (
        "Responses that could not be fetched: {n}. “surveybot responses retry {slug}” tries them again.",
        "Respuestas que no se pudieron obtener: {n}. «surveybot responses retry {slug}» lo vuelve a intentar.",
    ),
    "replies": ("Replies", "Respuestas por correo"),
    "replies_note": (
        "People who wrote back to the survey's e-mail; {auto} automatic (out-of-office) replies recorded.",
        "Personas que contestaron al correo de la encuesta; {auto} respuestas automáticas (fuera de la "
        "oficina) registradas.",
    ),
    "from": ("From", "De"),
    "subject": ("Subject", "Asunto"),
    "without_zone": (
        "Recipients without a time zone of their own (no timezone column, known city or one-zone country): {n}. "
        "Their mail follows the wave's zone. “surveybot contacts list --no-timezone” lists them.",
        "Destinatarios sin zona horaria propia (sin columna timezone, ciudad conocida ni país de una sola zona): "
        "{n}. Su correo sigue la zona de la ola. «surveybot contacts list --no-timezone» los lista.",
    ),
    "failed": ("Failed", "Fallidos"),
    "funnel_note": (
        "People: sent = an invitation or reminder accepted by the mail server, or refused as a "
        "bounce; delivered = sent − bounced.",
        "Personas: enviados = una invitación o recordatorio aceptado por el servidor de correo, o "
        "rechazado como rebote; entregados = enviados − rebotados.",
    ),
    # completions per day
    "per_day": ("Completions per day", "Respuestas completas por día"),
    "per_day_note": ("Days in {zone}; ▼ a reminder day.", "Días en {zone}; ▼ día de recordatorio."),
    "not_launched": ("Not launched yet.", "Aún no se ha lanzado."),
    # rates
    "rates": ("Response rates (AAPOR)", "Tasas de respuesta (AAPOR)"),
    "overall": ("Overall", "Total"),
    "by_network": ("By network", "Por red"),
    "by_region": ("By region", "Por región"),
    "by_country": ("By country", "Por país"),
    "by_language": ("By language", "Por idioma"),
    "group": ("Group", "Grupo"),
    "cases": ("Cases", "Casos"),
    # schedule
    "schedule": ("Schedule", "Calendario"),
    "step": ("Step", "Paso"),
    "when": ("When", "Cuándo"),
    "kind_invitation": ("invitation", "invitación"),
    "kind_reminder": ("reminder", "recordatorio"),
    "kind_final_reminder": ("final reminder", "último recordatorio"),
    "kind_close": ("close", "cierre"),
    "kind_thank_you": ("thank-you", "agradecimiento"),
    "step_pending": ("to come", "pendiente"),
    "step_done": ("done", "hecho"),
    "step_skipped": ("skipped", "omitido"),
    "step_cancelled": ("cancelled", "cancelado"),
    # outbox
    "outbox": ("Outbox", "Bandeja de salida"),
    "queued": ("Queued", "En cola"),
    "messages_sent": ("Messages sent", "Mensajes enviados"),
    "reason": ("Reason", "Motivo"),
    "attempts": ("Attempts", "Intentos"),
    "recipient": ("Recipient", "Destinatario"),
    "retry_failed": ("Retry failed messages", "Reintentar los fallidos"),
    "retryable": (
        "{n} can be retried (recipients not suppressed and not finished).",
        "{n} se pueden reintentar (destinatarios sin baja y sin terminar).",
    ),
    "none": ("None.", "Ninguno."),
    "showing": ("Showing {shown} of {total}.", "Se muestran {shown} de {total}."),
    # partial audit, unmatched, interviews
    "partials": (
        "Partial responses (discarded; audit lines only)",
        "Respuestas parciales (descartadas; solo registro)",
    ),
    "progress": ("Progress", "Avance"),
    "received": ("Received", "Recibida"),
    "response_id": ("Response", "Respuesta"),
    "assign": ("Assign to", "Asignar a"),
    "assign_button": ("Assign", "Asignar"),
    "assign_help": (
        "The e-mail of an invited recipient of this wave.",
        "El correo de un destinatario invitado a esta oleada.",
    ),
    "assigned": ("Response assigned: {outcome}.", "Respuesta asignada: {outcome}."),
    "outcome_complete": ("a complete response; its respondent is done", "respuesta completa; la persona ha terminado"),
    "outcome_duplicate": ("kept, flagged as a duplicate", "guardada, marcada como duplicada"),
    "interview_queue": ("Interview queue", "Cola de entrevistas"),
    "respondent": ("Respondent", "Persona"),
    "researcher": ("Researcher", "Investigador/a"),
    "booked_for": ("Booked for", "Reservada para"),
    "no_interviews": ("No interviews are booked yet.", "Aún no hay entrevistas reservadas."),
    # actions
    "actions": ("Actions", "Acciones"),
    "pause": ("Pause", "Pausar"),
    "resume": ("Resume", "Reanudar"),
    "close": ("Close now", "Cerrar ahora"),
    "confirm": ("Confirm", "Confirmar"),
    "confirm_pause": (
        "Pause wave {wave}? No step runs and none of its e-mail is sent until it is resumed.",
        "¿Pausar la oleada {wave}? No se ejecuta ningún paso ni se envía su correo hasta reanudarla.",
    ),
    "confirm_resume": (
        "Resume wave {wave}? Steps that fell due while paused run once.",
        "¿Reanudar la oleada {wave}? Los pasos vencidos durante la pausa se ejecutan una vez.",
    ),
    "confirm_close": (
        "Close wave {wave} now? Its unsent invitations and reminders are cancelled; this cannot be undone.",
        "¿Cerrar ahora la oleada {wave}? Se cancelan sus invitaciones y recordatorios no enviados; "
        "no se puede deshacer.",
    ),
    "confirm_retry": (
        "Send wave {wave}'s {n} failed messages again (only to recipients not suppressed and not finished)?",
        "¿Enviar de nuevo los {n} mensajes fallidos de la oleada {wave} (solo a destinatarios sin "
        "baja y sin terminar)?",
    ),
    "done_pause": ("Wave paused.", "Oleada en pausa."),
    "done_resume": ("Wave resumed.", "Oleada reanudada."),
    "done_close": ("Wave closed.", "Oleada cerrada."),
    "done_retry": ("{n} messages queued again.", "{n} mensajes de nuevo en cola."),
    "live_note": (
        "Figures refresh by themselves every few seconds.",
        "Las cifras se actualizan solas cada pocos segundos.",
    ),
    # partner view
    "partner_title": ("Network {network}", "Red {network}"),
    "partner_intro": (
        "Your network's contacts only: their funnel and response rates in each wave, delivery "
        "problems to fix, and your uploads.",
        "Solo los contactos de su red: su embudo y tasas de respuesta en cada oleada, los problemas "
        "de entrega por corregir y sus cargas.",
    ),
    "partner_no_waves": ("None of your contacts is in a wave yet.", "Ninguno de sus contactos está aún en una oleada."),
    "uploads": ("Your uploads", "Sus cargas"),
    "file": ("File", "Archivo"),
    "uploaded": ("Uploaded", "Cargado"),
    "rows": ("Rows", "Filas"),
    "imported": ("New", "Nuevos"),
    "updated": ("Updated", "Actualizados"),
    "conflicts": ("Conflicts", "Conflictos"),
    "rejected": ("Rejected", "Rechazados"),
    "rejected_rows": ("Rejected rows", "Filas rechazadas"),
    "row": ("Row", "Fila"),
    "field": ("Field", "Campo"),
    "no_uploads": ("No uploads yet.", "Aún no hay cargas."),
    "problems": ("Delivery problems to fix", "Problemas de entrega por corregir"),
    "problem_bounced": ("bounced", "rebotó"),
    "problem_opted_out": ("opted out", "se dio de baja"),
    "problem_failed": ("not delivered", "no entregado"),
    "no_problems": ("No delivery problems.", "Sin problemas de entrega."),
    "who_answered": ("Who answered", "Quién respondió"),
    "answered": ("Answered", "Respondió"),
    "yes": ("yes", "sí"),
    "no": ("no", "no"),
    "shared_note": (
        "This wave shares with partner networks which of their contacts answered.",
        "Esta oleada comparte con las redes qué contactos suyos respondieron.",
    ),
    "hidden_note": (
        "This wave does not share who answered: counts under 5 show as <5, and rates are hidden "
        "where they would reveal them.",
        "Esta oleada no comparte quién respondió: los recuentos menores de 5 se muestran como <5 y se "
        "ocultan las tasas que los revelarían.",
    ),
    "name": ("Name", "Nombre"),
    "email": ("E-mail", "Correo"),
    "city": ("City", "Ciudad"),
    "country": ("Country", "País"),
    "problem": ("Problem", "Problema"),
}
TEXT = {language: {key: pair[n] for key, pair in PHRASES.items()} for n, language in enumerate(("en", "es"))}
LOCALES = {"en": "en_GB", "es": "es_ES"}
# each locale's own percent pattern ("50%", "50 %") with one decimal
_PERCENT = {
    lang: Locale.parse(code).percent_formats[None].pattern.replace("#,##0", "#,##0.0") for lang, code in LOCALES.items()
}


def number(value: int | None, language: str) -> str:
    return "—" if value is None else format_decimal(value, locale=LOCALES[language])


def percent(value: float | None, language: str) -> str:
    return "—" if value is None else format_percent(value, _PERCENT[language], locale=LOCALES[language])
