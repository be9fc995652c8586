// The portal's few behaviours, read from data- attributes: the Content-Security-Policy
// (script-src 'self') forbids inline handlers, and text in an attribute is only ever
// text here, never code. Listeners sit on the document, so content htmx swaps in
// later works too. Every page works without this file; it only makes them nicer.
"use strict";

(function () {
  // <form data-confirm="Deactivate Eve?">: ask before a destructive post.
  document.addEventListener(
    "submit",
    function (event) {
      const form = event.target.closest("form[data-confirm]");
      if (form && !window.confirm(form.dataset.confirm)) {
        event.preventDefault();
        event.stopImmediatePropagation();
      }
    },
    true,
  );

  // An error shown in #error-region (by the error handlers' HX-Retarget) is about
  // the last request: the next one starts without it.
  document.addEventListener("htmx:beforeRequest", function (event) {
    const region = document.getElementById("error-region");
    if (region) region.replaceChildren();
    // <button data-add-filter="status">: a filter already on screen is not added twice;
    // the focus goes to the one there.
    const adding = event.detail && event.detail.elt && event.detail.elt.dataset && event.detail.elt.dataset.addFilter;
    if (adding) {
      const form = event.detail.elt.closest("form");
      const there = form && form.querySelector('.filter[data-filter="' + adding + '"] select, .filter[data-filter="' + adding + '"] input');
      if (there) {
        event.preventDefault();
        there.focus();
      } else if (form) {
        // The value a removed chip left behind (status=any) goes now, not when the
        // chip arrives: a choice made in the chip at once must not be sent beside it.
        // The chip's own first option says the same ("Any"), so nothing is lost meanwhile.
        form.querySelectorAll('input[data-filter-cleared="' + adding + '"]').forEach(function (old) {
          old.remove();
        });
      }
    }
  });

  // <input data-select-on-click>: a link or key to copy, selected in one click,
  // or on reaching it with Tab.
  function selectCopyField(event) {
    const target = event.target;
    if (target instanceof HTMLInputElement && target.matches("[data-select-on-click]")) target.select();
  }
  document.addEventListener("focusin", selectCopyField);

  document.addEventListener("click", function (event) {
    selectCopyField(event);
    const target = event.target;
    if (!(target instanceof Element)) return;

    // <a data-dismiss=".confirm" href="…">: remove the enclosing box instead of
    // following the link (which, without this script, leads back to the list).
    // With data-then-focus="selector", the focus goes there rather than to <body>.
    const dismiss = target.closest("[data-dismiss]");
    if (dismiss) {
      const box = dismiss.closest(dismiss.dataset.dismiss);
      if (box) {
        event.preventDefault();
        box.remove();
        focusThen(dismiss);
      }
    }

    // <button data-remove-filter>: drop one "Add Filter" field and list again. A filter
    // whose absence means a default (status: Requested) leaves data-cleared-value behind
    // instead, so the URL says "every status" (status=any).
    const remove = target.closest("[data-remove-filter]");
    if (remove) {
      const form = remove.closest("form");
      const chip = remove.closest(".filter");
      const cleared = remove.dataset.clearedValue;
      if (cleared !== undefined) {
        const hidden = document.createElement("input");
        hidden.type = "hidden";
        hidden.name = chip.dataset.filter;
        hidden.value = cleared;
        hidden.dataset.filterCleared = chip.dataset.filter;
        chip.replaceWith(hidden);
      } else {
        chip.remove();
      }
      if (form) form.requestSubmit();
    }

    // A click outside an open <details class="menu"> closes it.
    document.querySelectorAll("details.menu[open]").forEach(function (menu) {
      if (!menu.contains(target)) menu.open = false;
    });

    // <button data-close-menu> inside a <details> menu: close it once chosen.
    const item = target.closest("[data-close-menu]");
    if (item) {
      const menu = item.closest("details");
      if (menu) menu.open = false;
    }
  });

  // A <details class="menu"> behaves as a menu button: Escape closes it and gives the
  // focus back to its summary, the arrow keys move between its items, and it closes
  // when the focus leaves it.
  function menuItems(menu) {
    return Array.from(
      menu.querySelectorAll(".menu-items a[href], .menu-items button:not([disabled]), .menu-items input:not([type=hidden])"),
    );
  }
  document.addEventListener("keydown", function (event) {
    const target = event.target;
    if (!(target instanceof Element)) return;
    const menu = target.closest("details.menu");
    if (!menu) {
      // <div data-escape> … <a data-cancel>: Escape inside the box (a confirmation) does
      // what its Cancel does.
      const box = event.key === "Escape" && target.closest("[data-escape]");
      const cancel = box && box.querySelector("[data-cancel]");
      if (cancel) {
        event.preventDefault();
        cancel.click();
      }
      return;
    }
    const summary = menu.querySelector("summary");
    if (event.key === "Escape" && menu.open) {
      event.preventDefault();
      menu.open = false;
      summary.focus();
      return;
    }
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
    event.preventDefault();
    if (!menu.open) menu.open = true;
    const items = menuItems(menu);
    if (!items.length) return; // still loading: the next press finds them
    const at = items.indexOf(target);
    const step = event.key === "ArrowDown" ? 1 : -1;
    const next = at === -1 ? (step === 1 ? 0 : items.length - 1) : (at + step + items.length) % items.length;
    items[next].focus();
  });
  document.addEventListener("focusout", function (event) {
    const target = event.target;
    const to = event.relatedTarget;
    if (!(target instanceof Element) || !(to instanceof Element)) return;
    const menu = target.closest("details.menu[open]");
    if (menu && !menu.contains(to)) menu.open = false;
  });

  // <input type="checkbox" data-check-all="user_id" hidden>: ticks every box of that
  // name in its form (this page's rows). Hidden until this script shows it: without
  // JavaScript it would do nothing, and the user ticks the boxes one by one.
  function boxesOf(all) {
    return Array.from(all.form.querySelectorAll('input[type=checkbox][name="' + all.dataset.checkAll + '"]'));
  }
  function syncCheckAll(form) {
    form.querySelectorAll("input[data-check-all]").forEach(function (all) {
      const boxes = boxesOf(all);
      const ticked = boxes.filter(function (b) {
        return b.checked;
      }).length;
      all.checked = boxes.length > 0 && ticked === boxes.length;
      all.indeterminate = ticked > 0 && ticked < boxes.length;
    });
  }
  document.addEventListener("change", function (event) {
    const target = event.target;
    if (target instanceof HTMLInputElement && target.form && target.type === "checkbox") {
      if (target.dataset.checkAll) {
        boxesOf(target).forEach(function (b) {
          b.checked = target.checked;
        });
      }
      syncCheckAll(target.form);
    }
    // <select data-ends-output="id"> whose options carry data-ends: the element `id`
    // says the end date the chosen batch gives.
    if (target instanceof HTMLSelectElement && target.dataset.endsOutput) {
      const out = document.getElementById(target.dataset.endsOutput);
      const option = target.selectedOptions[0];
      if (out && option && option.dataset.ends) out.textContent = option.dataset.ends;
    }
  });

  // On a phone a list's rows are cards (portal.css): each cell is named by its column's
  // header, as data-label. A header with no visible words (the actions') names nothing.
  function headerText(th) {
    const copy = th.cloneNode(true);
    copy.querySelectorAll(".visually-hidden, [hidden], input").forEach(function (hidden) {
      hidden.remove();
    });
    return copy.textContent.replace(/\s+/g, " ").trim();
  }
  function labelCells(table) {
    const head = table.tHead && table.tHead.rows[0];
    if (!head) return;
    const names = [];
    Array.from(head.cells).forEach(function (th) {
      const name = headerText(th);
      for (let i = 0; i < th.colSpan; i++) names.push(name);
    });
    Array.from(table.tBodies).forEach(function (body) {
      Array.from(body.rows).forEach(function (row) {
        let column = 0;
        Array.from(row.cells).forEach(function (cell) {
          const name = cell.colSpan === 1 && cell.tagName === "TD" ? names[column] : "";
          if (name) cell.dataset.label = name;
          else delete cell.dataset.label;
          column += cell.colSpan;
        });
      });
    });
  }

  function enhance(root) {
    root.querySelectorAll("input[data-check-all][hidden]").forEach(function (all) {
      all.hidden = false;
    });
    const tables = new Set(root.querySelectorAll("table.list"));
    const around = root.closest && root.closest("table.list");
    if (around) tables.add(around);
    tables.forEach(labelCells);
    // An "Add Filter" field added again replaces the value its removal left behind.
    const chips = Array.from(root.querySelectorAll(".filter[data-filter]"));
    if (root.matches && root.matches(".filter[data-filter]")) chips.push(root);
    chips.forEach(function (chip) {
      const form = chip.closest("form");
      if (!form) return;
      form.querySelectorAll('input[data-filter-cleared="' + chip.dataset.filter + '"]').forEach(function (old) {
        old.remove();
      });
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () {
      enhance(document);
    });
  } else {
    enhance(document);
  }
  document.addEventListener("htmx:load", function (event) {
    if (event.target instanceof Element) enhance(event.target);
  });

  // <a hx-get=… data-then-focus="selector">: once what it asked for is in place, the focus
  // goes to the first element matching `selector` (the trigger is often swapped away,
  // which would leave the focus on <body>).
  function focusThen(trigger) {
    const selector = trigger && trigger.dataset && trigger.dataset.thenFocus;
    const to = selector && document.querySelector(selector);
    if (to) to.focus();
  }
  // A swapped-in element says what was done (data-announce, into the page's
  // [data-live-region]) and where the keyboard goes on (data-autofocus): after Assign,
  // the row's replacement keeps the focus the removed row had.
  document.addEventListener("htmx:afterSettle", function (event) {
    focusThen(event.detail && event.detail.requestConfig && event.detail.requestConfig.elt);
    const said = document.querySelector("[data-announce]");
    if (said) {
      const region = document.querySelector("[data-live-region]");
      if (region) region.textContent = said.dataset.announce;
      said.removeAttribute("data-announce");
    }
    const focus = document.querySelector("[data-autofocus]");
    if (focus) {
      focus.removeAttribute("data-autofocus");
      focus.focus();
    }
  });
})();
