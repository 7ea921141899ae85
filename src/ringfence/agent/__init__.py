"""The endpoint agent: converge a host to the signed desired state of its cohort, and save itself from a bad update.

::

    config      agent.toml → AgentConfig (pydantic), errors name the field
    files       atomic writes (staging file, fsync, rename, fsync dir)
    state       everything that must survive a restart, under the state dir
    facts       what the host is (osquery when installed, else the platform module)
    timing      jittered poll interval, exponential backoff with jitter
    channel     the signed channel, read only through python-tuf's ngclient.Updater
    installers  file (atomic, last known good kept) and command installers
    reporter    enrolment, heartbeats and events to the server, queued on disk
    core        the Agent: start-up crash-loop accounting, poll, install, probe, commit or revert
    main        ``ringfence-agent run | enrol | status``

The commit protocol (see docs/agent.md): an install writes a *pending* marker
before it touches the host; every agent start increments the marker's start
counter before anything else; the health probe passing commits the version
(it becomes the last known good); ``crash_loop_threshold`` starts without a
commit restore the last known good, mark the version bad for good and report
``auto_reverted``.
"""

__all__: list[str] = []
