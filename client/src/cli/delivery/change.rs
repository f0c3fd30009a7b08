//! `new`, `update` and `handoff`: the commands that change a delivery.

use super::view::{DeliveryView, request_amount};
use super::*;

pub(super) async fn new(
    deliveries: &mut Deliveries<'_>,
    conn: &member::Connection,
    request: NewDeliveryRequest,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), DeliveryError> {
    let courier = request.courier.clone();
    let created = deliveries.create(conn, request).await?;
    let state = deliveries.show(&created.id)?;
    let code = created.code.display_grouped();
    if json {
        #[derive(Serialize)]
        struct NewView {
            #[serde(flatten)]
            delivery: DeliveryView,
            handoff_code: String,
            sent_to: Vec<String>,
            queued_for: Vec<String>,
        }
        let v = NewView {
            delivery: DeliveryView::of(&state, deliveries.coordinators(&created.id)),
            handoff_code: code,
            sent_to: created.delivered.sent_to.clone(),
            queued_for: created.delivered.queued.clone(),
        };
        serde_json::to_writer_pretty(&mut *out, &v)
            .map_err(|e| MemberError::Internal(e.to_string()))?;
        writeln!(out).map_err(MemberError::from)?;
    } else {
        let w = |out: &mut dyn Write| -> std::io::Result<()> {
            writeln!(out, "Created delivery {}", created.id)?;
            writeln!(
                out,
                "  {} for family {}, courier {}, deadline {}",
                request_amount(&state),
                state
                    .details
                    .as_ref()
                    .map(|d| d.family.as_str().to_owned())
                    .unwrap_or_default(),
                courier,
                state
                    .details
                    .as_ref()
                    .map(|d| rfc3339(d.deadline))
                    .unwrap_or_default()
            )?;
            writeln!(out)?;
            writeln!(out, "HAND-OFF CODE (for the family only):  {code}")?;
            writeln!(
                out,
                "  Give it to the family out of band (in person or by phone), never to the courier, and never in any message. It is shown only this once: it is not stored."
            )?;
            writeln!(
                out,
                "  The courier enters the code the family reads out at the hand-off; your client checks it."
            )?;
            if !created.delivered.sent_to.is_empty() {
                writeln!(out)?;
                writeln!(out, "Sent to: {}", created.delivered.sent_to.join(", "))?;
            }
            Ok(())
        };
        w(out).map_err(MemberError::from)?;
    }
    require_sent(&created.delivered)
}

pub(super) async fn update(
    deliveries: &mut Deliveries<'_>,
    conn: &member::Connection,
    id: &DeliveryId,
    updates: Vec<Update>,
    out: &mut dyn Write,
) -> Result<(), DeliveryError> {
    let mut delivered = Delivered::default();
    for u in updates {
        let d = deliveries.update(conn, id, u).await?;
        delivered.sent_to.extend(d.sent_to);
        delivered.queued.extend(d.queued);
        delivered.dropped.extend(d.dropped);
    }
    delivered.sent_to.sort();
    delivered.sent_to.dedup();
    let state = deliveries.show(id)?;
    writeln!(out, "Delivery {id} is now {}.", state.status).map_err(MemberError::from)?;
    if !delivered.sent_to.is_empty() {
        writeln!(out, "Sent to: {}", delivered.sent_to.join(", ")).map_err(MemberError::from)?;
    }
    require_sent(&delivered)
}

pub(super) async fn handoff(
    deliveries: &mut Deliveries<'_>,
    conn: &member::Connection,
    id: &DeliveryId,
    code: HandoffCode,
    out: &mut dyn Write,
) -> Result<(), DeliveryError> {
    let delivered = deliveries.handoff(conn, id, code).await?;
    writeln!(
        out,
        "Hand-off claimed for delivery {id}: sent to {} for verification. Run `postern delivery show {id}` for the answer.",
        if delivered.sent_to.is_empty() {
            "the coordinators".to_owned()
        } else {
            delivered.sent_to.join(", ")
        }
    )
    .map_err(MemberError::from)?;
    require_sent(&delivered)
}
