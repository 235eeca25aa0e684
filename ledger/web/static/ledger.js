// Optional: keys n and p move to the next and previous change of a diff. Pages work without it.
(function () {
  "use strict";
  var current = -1;
  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey) { return; }
    var tag = (event.target && event.target.tagName) || "";
    if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA") { return; }
    if (event.key !== "n" && event.key !== "p") { return; }
    var changes = document.querySelectorAll(".change");
    if (changes.length === 0) { return; }
    current = event.key === "n" ? Math.min(current + 1, changes.length - 1) : Math.max(current - 1, 0);
    changes[current].focus();
    changes[current].scrollIntoView({block: "center"});
    event.preventDefault();
  });
}());
