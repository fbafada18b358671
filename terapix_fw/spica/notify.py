"""The built-in notification of finished stacks: a mail through ``smtplib`` to the release control team.

Configured by the environment (so that the operator's daemon, not the instruction files, says where mail
goes): ``TERAPIX_NOTIFY_SMTP`` (``host:port``), ``TERAPIX_NOTIFY_TO`` (comma-separated addresses),
``TERAPIX_NOTIFY_FROM`` (default ``spica@<host>``), optional ``TERAPIX_NOTIFY_USER`` /
``TERAPIX_NOTIFY_PASSWORD`` and ``TERAPIX_NOTIFY_STARTTLS=1``.  Without ``TERAPIX_NOTIFY_SMTP`` nothing
is sent.  A mail that cannot be sent is logged, never fatal.
"""
from __future__ import annotations

import logging
import os
import socket

__all__ = ["notification_message", "send_notification"]

log = logging.getLogger("terapix.spica.notify")


def notification_message(job: dict):
    """The mail announcing a finished job: subject names the stack, its status and release.

    Parameters
    ----------
    job : dict
        Its ``spica_jobs`` row.

    Returns
    -------
    email.message.EmailMessage
    """
    from email.message import EmailMessage
    msg = EmailMessage()
    status = job.get("status")
    msg["Subject"] = f"[Spica {job.get('version')}] {job.get('name')} {status}"
    lines = [f"Stack/job: {job.get('name')} ({job.get('kind')}, {job.get('mode')} mode)",
             f"Release:   {job.get('version')}", f"Status:    {status}",
             f"Node:      {job.get('node') or '-'}", f"Started:   {job.get('start')}", f"Ended:     {job.get('end')}",
             f"Images:    {job.get('n_stack')} stacked, {job.get('n_astrometric')} in the astrometric list",
             f"Files:     {job.get('instruction_file')}", f"           {job.get('command_file')}"]
    if job.get("error"):
        lines.append(f"Error:     {job['error']}")
    if status == "done" and job.get("kind") == "stack":
        lines.append(f"\nPlease grade it: terapix spica grade {job.get('name')} A|B|C|D --comment '...'")
    msg.set_content("\n".join(lines) + "\n")
    return msg


def send_notification(job: dict, env=None) -> bool:
    """Mail the job's end when ``$TERAPIX_NOTIFY_SMTP`` and ``$TERAPIX_NOTIFY_TO`` are set.

    Parameters
    ----------
    job : dict
        Its ``spica_jobs`` row.
    env : mapping, optional
        The environment (``os.environ`` by default).

    Returns
    -------
    bool
        Whether a mail was sent (a mail server error is logged, not raised).
    """
    env = os.environ if env is None else env
    server = env.get("TERAPIX_NOTIFY_SMTP")
    to = [a.strip() for a in env.get("TERAPIX_NOTIFY_TO", "").split(",") if a.strip()]
    if not server or not to:
        return False
    import smtplib
    host, _, port = server.rpartition(":")
    if not host:
        host, port = port, "25"
    msg = notification_message(job)
    msg["From"] = env.get("TERAPIX_NOTIFY_FROM") or f"spica@{socket.gethostname()}"
    msg["To"] = ", ".join(to)
    try:
        with smtplib.SMTP(host, int(port), timeout=30) as smtp:
            if env.get("TERAPIX_NOTIFY_STARTTLS") == "1":
                smtp.starttls()
            if env.get("TERAPIX_NOTIFY_USER"):
                smtp.login(env["TERAPIX_NOTIFY_USER"], env.get("TERAPIX_NOTIFY_PASSWORD", ""))
            smtp.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:
        log.error("cannot mail the end of %s to %s through %s: %s", job.get("name"), ", ".join(to), server, exc)
        return False
    return True
