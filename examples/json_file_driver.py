"""A UPS read from a JSON file every 2 s; importing this registers driver = json-file."""

import json

import trio

from nuttrio.hw import DRIVERS, DriverContext
from nuttrio.hw.kit import DeviceSilent, every, run_polling_driver
from nuttrio.nutconf import UpsSection
from nuttrio.state import CommandStatus, DriverCommand, DriverLink, Variable


class JsonFileUps:
    commands = ()  # variables() and commands: what the kit publishes after each poll

    def __init__(self, section: UpsSection, context: DriverContext) -> None:  # the factory
        self.path, self.values = context.confdir / section.port, dict[str, object]()

    def variables(self) -> list[Variable]:
        return [Variable(name, str(value)) for name, value in self.values.items()]

    async def run(
        self, link: DriverLink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        async def poll(planned: float) -> None:  # no file or bad JSON: DATA-STALE
            try:
                self.values = json.loads(await trio.Path(self.path).read_text())
            except (OSError, ValueError) as exc:
                raise DeviceSilent(str(exc)) from exc

        async def execute(command: DriverCommand) -> CommandStatus:  # nothing to write to
            return CommandStatus.INVALID_ARGUMENT

        schedule = every(2.0, trio.current_time())
        await run_polling_driver(self, link, poll, execute, schedule, task_status=task_status)


DRIVERS["json-file"] = JsonFileUps
