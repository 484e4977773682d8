"""Routes a Msg to its module's handler and a query path to its module's query function."""

from __future__ import annotations

from collections.abc import Sequence

from nesachain.types.module import AppModule, MsgHandler, QueryFn

__all__ = ["Router"]


class Router:
    def __init__(self, modules: Sequence[AppModule]) -> None:
        self._msgs: dict[str, MsgHandler] = {}
        self._queries: dict[str, QueryFn] = {}
        for module in modules:
            for type_name, handler in module.msg_handlers().items():
                if type_name in self._msgs:
                    raise ValueError(f"two handlers for {type_name}")
                self._msgs[type_name] = handler
            for name, fn in module.queries().items():
                self._queries[f"{module.name}/{name}"] = fn

    def handler(self, type_name: str) -> MsgHandler | None:
        return self._msgs.get(type_name)

    def query(self, path: str) -> QueryFn | None:
        return self._queries.get(path.strip("/"))

    def query_paths(self) -> list[str]:
        return sorted(self._queries)
